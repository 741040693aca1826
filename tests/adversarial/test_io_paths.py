"""Adversarial paths: FIFOs, devices, folders where files belong, symlinks and shards out of the folder.

None of these may hang (files are opened O_NONBLOCK and checked with fstat), read outside the
checkpoint folder, or end in anything but a typed error; CLI cases exit 2 without a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import deadir
from deadir.cli import main
from deadir.errors import CheckpointError, UnsafeCheckpointError
from deadir.io import open_checkpoint
from deadir.testing.checkpoints import write_ct2, write_safetensors, write_safetensors_sharded


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("name", ["w.safetensors", "m.gguf", "model.bin", "x.index.json", "weights.dat"])
def test_fifo_named_directly(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeCheckpointError, match="FIFO"):
        open_checkpoint(_fifo(tmp_path / name))


@pytest.mark.parametrize("name", ["model.safetensors", "model.safetensors.index.json", "only.gguf", "model.bin"])
def test_fifo_inside_a_folder(tmp_path: Path, name: str) -> None:
    _fifo(tmp_path / name)
    with pytest.raises(UnsafeCheckpointError, match="FIFO"):
        open_checkpoint(tmp_path)


def test_fifo_config_json(st_folder: Callable[..., Path]) -> None:
    folder = st_folder()
    (folder / "config.json").unlink()
    _fifo(folder / "config.json")
    with pytest.raises(UnsafeCheckpointError, match="FIFO"):
        open_checkpoint(folder)


def test_fifo_shard(tmp_path: Path) -> None:
    folder = write_safetensors_sharded(tmp_path / "ck", None, [{"a": np.ones(4, np.float32)},
                                                                {"b": np.ones(4, np.float32)}])  # fmt: skip
    shard = folder / "model-00002-of-00002.safetensors"
    shard.unlink()
    _fifo(shard)
    with pytest.raises(UnsafeCheckpointError, match="FIFO"):
        open_checkpoint(folder)


def test_fifo_tokenizer_beside_ct2_whisper(tmp_path: Path) -> None:
    from deadir.whisper_ct2 import ctranslate2_whisper_tokenizer

    _fifo(tmp_path / "tokenizer.json")
    with pytest.raises(UnsafeCheckpointError, match="FIFO"):
        ctranslate2_whisper_tokenizer(tmp_path)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero", "/dev/urandom"])
def test_character_devices(device: str) -> None:
    with pytest.raises(UnsafeCheckpointError, match="device"):
        open_checkpoint(device)


def test_folder_where_the_weights_file_belongs(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").mkdir()
    with pytest.raises(UnsafeCheckpointError, match="folder"):
        open_checkpoint(tmp_path)


@pytest.mark.parametrize("shard", ["../outside/x.safetensors", "sub/../../outside/x.safetensors", "/etc/passwd",
                                   "/proc/self/environ"])  # fmt: skip
def test_shard_outside_the_folder(tmp_path: Path, shard: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_safetensors(outside / "x.safetensors", {"a": np.ones(4, np.float32)})
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(UnsafeCheckpointError, match="outside the checkpoint folder"):
        open_checkpoint(folder)


def test_shard_symlink_outside_the_folder(tmp_path: Path) -> None:
    outside = write_safetensors(tmp_path / "x.safetensors", {"a": np.ones(4, np.float32)})
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "s.safetensors").symlink_to(outside)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "s.safetensors"}}))
    with pytest.raises(UnsafeCheckpointError, match="symlink"):
        open_checkpoint(folder)


def test_shard_symlink_inside_the_folder_is_allowed(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    (folder / "blobs").mkdir(parents=True)
    write_safetensors(folder / "blobs" / "abc", {"a": np.ones(4, np.float32)})
    (folder / "s.safetensors").symlink_to(folder / "blobs" / "abc")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "s.safetensors"}}))
    assert open_checkpoint(folder).read(["a"])["a"].tolist() == [1.0] * 4


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_symlink_out_of_the_folder(st_folder: Callable[..., Path], tmp_path: Path, name: str) -> None:
    folder = st_folder()
    target = tmp_path / f"elsewhere-{name}"
    (folder / name).rename(target)
    (folder / name).symlink_to(target)
    with pytest.raises(UnsafeCheckpointError, match="outside the checkpoint folder"):
        open_checkpoint(folder)


def test_hub_cache_symlink_layout_is_allowed(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--m"
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / "rev1"
    snap.mkdir(parents=True)
    write_safetensors(repo / "blobs" / "0123", {"ln_f.weight": np.ones(8, np.float32)})
    (snap / "model.safetensors").symlink_to("../../blobs/0123")
    assert set(open_checkpoint(snap).tensors) == {"ln_f.weight"}


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.safetensors").symlink_to(tmp_path / "b.safetensors")
    (tmp_path / "b.safetensors").symlink_to(tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError):
        open_checkpoint(tmp_path / "a.safetensors")


def test_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").symlink_to(tmp_path / "gone.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        open_checkpoint(tmp_path)


def test_missing_shard_still_named(tmp_path: Path) -> None:
    folder = write_safetensors_sharded(tmp_path / "ck", None, [{"a": np.ones(4, np.float32)}])
    (folder / "model-00001-of-00001.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing shard"):
        deadir.scan(folder)


# ----------------------------------------------------------------------------- through the CLI


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "fifo-in-folder", "device", "shard-escape", "ct2-fifo-config"])
def test_cli_scan_refuses_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    if kind == "fifo":
        path = str(_fifo(tmp_path / "w.safetensors"))
    elif kind == "fifo-in-folder":
        _fifo(tmp_path / "model.safetensors")
        path = str(tmp_path)
    elif kind == "device":
        path = "/dev/zero"
    elif kind == "shard-escape":
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "/etc/passwd"}}))
        path = str(tmp_path)
    else:
        write_ct2(tmp_path / "model.bin", {"encoder/layer_norm/gamma": np.ones(4, np.float32)})
        _fifo(tmp_path / "config.json")
        path = str(tmp_path)
    code, err = _cli(["scan", path], capsys)
    assert code == 2 and "Traceback" not in err and "error:" in err
