"""Adversarial report destinations: folders, devices, /proc, files as parents, failed renames.

Every problem is an OutputError (a DeadirError and an OSError) naming the destination; nothing
partial is left; a written report has the mode a plain open() gives (umask), and is fsynced
before the rename.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deadir.cli import main
from deadir.errors import DeadirError, OutputError
from deadir.report import check_destination, write_json_atomic, write_text_atomic


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("dest", ["folder", "/dev/null", "/proc/deadir-report.json", "/proc/self/status",
                                  "file-as-parent", "/sys/deadir.json"])  # fmt: skip
def test_bad_destinations(tmp_path: Path, dest: str) -> None:
    if dest == "folder":
        target = tmp_path / "out"
        target.mkdir()
    elif dest == "file-as-parent":
        (tmp_path / "plain").write_text("x")
        target = tmp_path / "plain" / "report.json"
    else:
        target = Path(dest)
    with pytest.raises(OutputError) as err:
        write_json_atomic(target, {"a": 1})
    assert isinstance(err.value, DeadirError) and isinstance(err.value, OSError)
    assert str(target) in str(err.value)


def test_nothing_partial_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    target.write_text("old\n")

    def refuse(src: str, dst: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="Read-only file system"):
        write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left


def test_fsync_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: object) -> None:
        events.append("replace")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_text_atomic(tmp_path / "r.txt", "x")
    assert events[:2] == ["fsync", "replace"]


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_mode_follows_the_umask(tmp_path: Path, umask: Callable[[int], None], mask: int, mode: int) -> None:
    umask(mask)
    path = write_text_atomic(tmp_path / "r.txt", "x")
    assert path.stat().st_mode & 0o777 == mode


def test_missing_folder_is_created(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "a" / "b" / "r.json", {"x": [1, 2]})
    assert path.read_text().startswith("{")


def test_check_destination_accepts_new_and_regular_files(tmp_path: Path) -> None:
    assert check_destination(tmp_path / "new.json") == tmp_path / "new.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_destination(tmp_path / "old.json") == tmp_path / "old.json"


@pytest.mark.parametrize("dest", ["folder", "/dev/full", "/proc/x.json"])
def test_cli_scan_output_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], dest: str) -> None:
    import numpy as np

    from deadir.testing.checkpoints import write_safetensors_folder

    folder = write_safetensors_folder(tmp_path / "ck", {"model_type": "gpt2", "n_embd": 8},
                                      {"ln_f.weight": np.linspace(0.5, 2, 8, dtype=np.float32)})  # fmt: skip
    out = tmp_path if dest == "folder" else Path(dest)
    code = main(["scan", str(folder), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(out) in err
