"""deadir.io.ctranslate2: the model.bin header, aliases, exact reads and error paths."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from deadir.errors import CheckpointError
from deadir.io import detect_format, list_tensors, read_config, read_tensors
from deadir.testing.checkpoints import CT2_WHISPER_ALIASES, tiny_whisper, whisper_to_ct2, write_ct2


def test_ct2_lists_variables_aliases_and_reads(tmp_path: Path) -> None:
    variables = whisper_to_ct2(tiny_whisper(), np.float16)
    file = write_ct2(tmp_path / "model.bin", variables, aliases=CT2_WHISPER_ALIASES)
    assert detect_format(file) == "ctranslate2"
    infos = list_tensors(file)
    assert set(infos) == set(variables) | set(CT2_WHISPER_ALIASES)
    gamma = infos["encoder/layer_norm/gamma"]
    assert (gamma.shape, gamma.dtype, gamma.nbytes) == ((16,), "F16", 32)
    assert infos["decoder/num_heads"].shape == () and infos["decoder/num_heads"].dtype == "I16"
    assert infos["decoder/projection/weight"].alias_of == "decoder/embeddings/weight"
    got = read_tensors(tmp_path, ["encoder/layer_norm/gamma", "decoder/projection/weight", "decoder/num_heads"])
    assert np.array_equal(got["encoder/layer_norm/gamma"], variables["encoder/layer_norm/gamma"].astype(np.float64))
    assert np.array_equal(got["decoder/projection/weight"], variables["decoder/embeddings/weight"].astype(np.float64))
    assert got["decoder/num_heads"] == 2.0


def test_ct2_truncated_and_lying_headers(tmp_path: Path) -> None:
    good = {"a/gamma": np.ones(8, np.float16), "b/weight": np.ones((4, 4), np.float32)}
    file = write_ct2(tmp_path / "model.bin", good)
    data = file.read_bytes()
    file.write_bytes(data[:-20])  # cut into the alias count and b/weight's data
    with pytest.raises(CheckpointError, match="truncated"):
        list_tensors(file)
    file.write_bytes(data[:30])  # cut inside the header
    with pytest.raises(CheckpointError, match="truncated"):
        list_tensors(file)
    # byte count that disagrees with shape x dtype
    lie = data.replace(struct.pack("<B", 4) + struct.pack("<I", 16), struct.pack("<B", 4) + struct.pack("<I", 14), 1)
    file.write_bytes(lie)
    with pytest.raises(CheckpointError, match="header lies about variable 'a/gamma'"):
        list_tensors(file)


def test_ct2_unknown_dtype_alias_and_version(tmp_path: Path) -> None:
    good = {"a/gamma": np.ones(8, np.float16)}
    file = write_ct2(tmp_path / "model.bin", good)
    data = file.read_bytes()
    file.write_bytes(data.replace(struct.pack("<B", 4) + struct.pack("<I", 16), struct.pack("<BI", 9, 16), 1))
    with pytest.raises(CheckpointError, match="unknown dtype code 9"):
        list_tensors(file)
    write_ct2(file, good, aliases={"x": "missing/target"})
    with pytest.raises(CheckpointError, match="alias 'x' points at unknown variable 'missing/target'"):
        list_tensors(file)
    write_ct2(file, good, version=3)
    with pytest.raises(CheckpointError, match="binary version 3 is not supported"):
        list_tensors(file)


def test_ct2_quantised_weight_refused(tmp_path: Path) -> None:
    variables = {"l/weight": np.ones((2, 4), np.int8), "l/weight_scale": np.ones(2, np.float32)}
    file = write_ct2(tmp_path / "model.bin", variables)
    with pytest.raises(CheckpointError, match=r"'l/weight' is quantised"):
        read_tensors(file, ["l/weight"])
    assert read_tensors(file, ["l/weight_scale"])["l/weight_scale"].tolist() == [1.0, 1.0]


def test_ct2_config_json_next_to_model(tmp_path: Path) -> None:
    write_ct2(tmp_path / "model.bin", {"a/gamma": np.ones(8, np.float16)})
    (tmp_path / "config.json").write_text(json.dumps({"lang_ids": [1, 2]}))
    assert read_config(tmp_path / "model.bin") == {"lang_ids": [1, 2]}
