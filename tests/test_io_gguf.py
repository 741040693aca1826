"""deadir.io.gguf: header parsing against gguf.GGUFReader, exact widening, dequantisation, error paths."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deadir.errors import CheckpointError
from deadir.io import TensorInfo, detect_format, list_tensors, read_config, read_tensors

RNG = np.random.default_rng(0)


@pytest.fixture
def gguf_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    from gguf import GGMLQuantizationType, GGUFWriter, quants

    arrays = {
        "blk.0.attn_norm.weight": RNG.normal(size=64).astype(np.float32),
        "output_norm.weight": np.linspace(-1, 2, 64, dtype=np.float32),
        "blk.0.ffn_norm.weight": RNG.normal(size=64).astype(np.float16),
        "blk.0.attn_q.weight": RNG.normal(size=(8, 64)).astype(np.float32),
        "blk.0.bf16.weight": RNG.normal(size=32).astype(np.float32),
    }
    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_embedding_length(64)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_token_list([f"tok{i}" for i in range(5000)])  # long array: skipped, length kept
    writer.add_array("llama.small_array", [1, 2, 3])
    writer.add_tensor("blk.0.attn_norm.weight", arrays["blk.0.attn_norm.weight"])
    writer.add_tensor("output_norm.weight", arrays["output_norm.weight"])
    writer.add_tensor("blk.0.ffn_norm.weight", arrays["blk.0.ffn_norm.weight"])
    q8 = quants.quantize(arrays["blk.0.attn_q.weight"], GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_shape=q8.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    bf16 = quants.quantize(arrays["blk.0.bf16.weight"], GGMLQuantizationType.BF16)
    writer.add_tensor("blk.0.bf16.weight", bf16, raw_shape=bf16.shape, raw_dtype=GGMLQuantizationType.BF16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    arrays["q8_expected"] = quants.dequantize(q8, GGMLQuantizationType.Q8_0)
    arrays["bf16_expected"] = quants.dequantize(bf16, GGMLQuantizationType.BF16)
    return path, arrays


def test_gguf_lists_row_major_shapes_and_types(gguf_file: Any) -> None:
    path, _ = gguf_file
    assert detect_format(path) == "gguf"
    infos = list_tensors(path)
    assert infos["blk.0.attn_norm.weight"] == TensorInfo(
        "blk.0.attn_norm.weight", (64,), "F32", path, 256, infos["blk.0.attn_norm.weight"].offset
    )
    assert infos["blk.0.ffn_norm.weight"].dtype == "F16"
    q = infos["blk.0.attn_q.weight"]
    assert (q.shape, q.dtype, q.nbytes) == ((8, 64), "Q8_0", 8 * 2 * 34)  # 2 blocks of 34 bytes per row
    assert infos["blk.0.bf16.weight"].dtype == "BF16"


def test_gguf_matches_gguf_reader_offsets(gguf_file: Any) -> None:
    from gguf import GGUFReader

    path, _ = gguf_file
    infos = list_tensors(path)
    reader = GGUFReader(path)
    assert {t.name: (int(t.data_offset), int(t.n_bytes)) for t in reader.tensors} == {
        n: (i.offset, i.nbytes) for n, i in infos.items()
    }


def test_gguf_reads_float_exactly_and_dequantises(gguf_file: Any) -> None:
    path, arrays = gguf_file
    got = read_tensors(path, list(list_tensors(path)))
    for name in ("blk.0.attn_norm.weight", "output_norm.weight", "blk.0.ffn_norm.weight"):
        assert got[name].dtype == np.float64
        assert np.array_equal(got[name], arrays[name].astype(np.float64))
    assert np.array_equal(got["blk.0.attn_q.weight"], arrays["q8_expected"].astype(np.float64))
    assert np.allclose(got["blk.0.attn_q.weight"], arrays["blk.0.attn_q.weight"], atol=0.05)
    assert np.array_equal(got["blk.0.bf16.weight"], arrays["bf16_expected"].astype(np.float64))


def test_gguf_config_metadata(gguf_file: Any) -> None:
    path, _ = gguf_file
    config = read_config(path)
    assert config["general.architecture"] == "llama"
    assert config["llama.block_count"] == 1
    assert config["llama.embedding_length"] == 64
    assert config["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5, rel=1e-6)
    assert config["tokenizer.ggml.tokens"] == {"array_length": 5000}
    assert config["llama.small_array"] == [1, 2, 3]


def test_gguf_header_cache_returns_copies_and_sees_rewrites(gguf_file: Any) -> None:
    path, _ = gguf_file
    first = list_tensors(path)
    first.clear()
    config = read_config(path)
    config["general.architecture"] = "mutated"
    assert len(list_tensors(path)) == 5 and read_config(path)["general.architecture"] == "llama"
    path.write_bytes(path.read_bytes()[:-100])  # rewritten file: parsed again, not served from cache
    with pytest.raises(CheckpointError, match="truncated"):
        list_tensors(path)


def test_gguf_quant_type_without_dequantiser(gguf_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gguf import quants

    def refuse(data: Any, qtype: Any) -> Any:
        raise NotImplementedError(qtype)

    monkeypatch.setattr(quants, "dequantize", refuse)
    path, _ = gguf_file
    with pytest.raises(CheckpointError, match=r"'blk.0.attn_q.weight' is stored as Q8_0"):
        read_tensors(path, ["blk.0.attn_q.weight"])
    assert read_tensors(path, ["output_norm.weight"])["output_norm.weight"].shape == (64,)


def test_gguf_truncated_data(gguf_file: Any) -> None:
    path, _ = gguf_file
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"truncated: tensor"):
        list_tensors(path)


@pytest.mark.parametrize("keep", [6, 30, 200])
def test_gguf_truncated_header(gguf_file: Any, keep: int) -> None:
    path, _ = gguf_file
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match=r"truncated"):
        read_config(path)


def test_gguf_unsupported_version(gguf_file: Any) -> None:
    path, _ = gguf_file
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 1)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="GGUF version 1 not supported"):
        list_tensors(path)
