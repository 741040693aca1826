"""deadir.io.safetensors: single files, folders and the sharded index, every reader and error path."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deadir.errors import CheckpointError
from deadir.io import detect_format, list_tensors, read_config, read_tensors
from deadir.testing.checkpoints import write_safetensors


def test_safetensors_single_file_lists_headers_and_reads_exact_float64(tmp_path: Path, st_tensors: Any) -> None:
    file = tmp_path / "w.safetensors"
    write_safetensors(file, st_tensors)
    infos = list_tensors(file)
    assert set(infos) == set(st_tensors)
    big = infos["big.weight"]
    assert (big.shape, big.dtype, big.nbytes, big.file) == ((3, 4), "F32", 48, file)
    assert infos["norm.weight"].dtype == "BF16" and infos["norm.weight"].nbytes == 8
    # the recorded offset really points at the data
    raw = file.read_bytes()[big.offset : big.offset + big.nbytes]
    assert np.array_equal(np.frombuffer(raw, "<f4"), np.arange(12, dtype=np.float32))
    got = read_tensors(file, ["encoder.layer.0.LayerNorm.weight", "encoder.layer.0.LayerNorm.bias", "norm.weight"])
    for name, arr in got.items():
        assert arr.dtype == np.float64
        assert np.array_equal(arr, st_tensors[name].double().numpy())
    assert got["encoder.layer.0.LayerNorm.weight"][2] == np.float32(1e-30)  # tiny gains survive exactly
    assert detect_format(file) == "safetensors"


def test_safetensors_folder_with_config(tmp_path: Path, st_tensors: Any) -> None:
    write_safetensors(tmp_path / "model.safetensors", st_tensors)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    assert detect_format(tmp_path) == "safetensors"
    assert read_config(tmp_path) == {"model_type": "bert", "hidden_size": 4}
    assert read_tensors(tmp_path, ["big.weight"])["big.weight"].shape == (3, 4)


def _sharded(tmp_path: Path, st_tensors: dict[str, torch.Tensor]) -> Path:
    names = sorted(st_tensors)
    shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    weight_map = {}
    for shard, shard_names in shards.items():
        write_safetensors(tmp_path / shard, {n: st_tensors[n] for n in shard_names})
        weight_map.update(dict.fromkeys(shard_names, shard))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return tmp_path


def test_sharded_folder_reads_across_shards(tmp_path: Path, st_tensors: Any) -> None:
    folder = _sharded(tmp_path, st_tensors)
    assert detect_format(folder) == "safetensors-sharded"
    infos = list_tensors(folder)
    assert set(infos) == set(st_tensors)
    assert len({i.file for i in infos.values()}) == 2
    got = read_tensors(folder, list(st_tensors))
    for name, tensor in st_tensors.items():
        assert np.array_equal(got[name], tensor.double().numpy())
    # the index file itself is also accepted
    assert set(list_tensors(folder / "model.safetensors.index.json")) == set(st_tensors)
    assert read_config(folder)["model_type"] == "llama"


def test_sharded_index_pointing_at_missing_shard(tmp_path: Path, st_tensors: Any) -> None:
    folder = _sharded(tmp_path, st_tensors)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing shard.*model-00002-of-00002"):
        list_tensors(folder)


def test_sharded_index_naming_tensor_its_shard_lacks(tmp_path: Path, st_tensors: Any) -> None:
    folder = _sharded(tmp_path, st_tensors)
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"ghost\.weight"):
        list_tensors(folder)


def test_sharded_index_corrupt_json(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt safetensors index"):
        list_tensors(tmp_path)


def test_safetensors_truncated_data(tmp_path: Path, st_tensors: Any) -> None:
    file = tmp_path / "w.safetensors"
    write_safetensors(file, st_tensors)
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=r"truncated.*w.safetensors|w.safetensors.*truncated"):
        list_tensors(file)


def _raw_safetensors(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_safetensors_header_length_beyond_file(tmp_path: Path) -> None:
    file = tmp_path / "x.safetensors"
    file.write_bytes(struct.pack("<Q", 10_000) + b'{"a": 1}')
    with pytest.raises(CheckpointError, match="exceeds the file size"):
        list_tensors(file)


def test_safetensors_header_not_json(tmp_path: Path) -> None:
    file = _raw_safetensors(tmp_path / "x.safetensors", b"{oops, not json}")
    with pytest.raises(CheckpointError, match="not JSON"):
        list_tensors(file)


def test_safetensors_header_lies_about_sizes(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    file = _raw_safetensors(tmp_path / "x.safetensors", header, b"\0" * 8)
    with pytest.raises(CheckpointError, match="header lies about tensor 'w'"):
        list_tensors(file)


def test_safetensors_header_entry_malformed(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4]}}).encode()
    file = _raw_safetensors(tmp_path / "x.safetensors", header, b"\0" * 16)
    with pytest.raises(CheckpointError, match="corrupt safetensors header entry for 'w'"):
        list_tensors(file)


def test_missing_tensor_names_are_all_listed(tmp_path: Path, st_tensors: Any) -> None:
    file = tmp_path / "w.safetensors"
    write_safetensors(file, st_tensors)
    with pytest.raises(CheckpointError, match=r"'nope\.a'.*'nope\.b'"):
        read_tensors(file, ["big.weight", "nope.a", "nope.b"])
