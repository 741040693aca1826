"""Adversarial checkpoint bytes: parser limits, JSON depth and digits, unsupported dtypes, lying metadata.

Each case builds its bad file at test time and asserts the typed error; each family has a
control (the same builder with a sane value) that must open, so a test cannot pass vacuously.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import deadir
from deadir.errors import (
    CheckpointError,
    CheckpointLimitError,
    ConfigMismatchError,
    UnsupportedDtypeError,
)
from deadir.io import Limits, open_checkpoint
from deadir.io.limits import json_depth
from deadir.testing.checkpoints import write_ct2, write_gguf, write_safetensors, write_safetensors_sharded


def gguf_string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def raw_gguf(kv: bytes = b"", n_kv: int = 0, n_tensors: int = 0, tensors: bytes = b"", tail: bytes = b"") -> bytes:
    """GGUF v3 bytes from raw metadata and tensor-info sections (padded so the file is not 'truncated')."""
    body = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kv + tensors
    return body + tail + b"\0" * 64


def raw_safetensors(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _st_entry(dtype: str = "F32", shape: list[int] | None = None, n: int = 16) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape or [4], "data_offsets": [0, n]}


# ----------------------------------------------------------------------------- safetensors header


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_safetensors_header_nested_too_deep(tmp_path: Path, depth: int) -> None:
    header = b'{"__metadata__": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header))
    with pytest.raises(CheckpointLimitError, match="nesting depth"):
        open_checkpoint(tmp_path / "w.safetensors")


def test_safetensors_header_nesting_control_opens(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": {"x": "[[[["}, "w": _st_entry()}).encode()  # brackets inside strings
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    assert set(open_checkpoint(tmp_path / "w.safetensors").tensors) == {"w"}


def test_json_depth_counts_structure_not_strings() -> None:
    assert json_depth(b'{"a": [[1], {"b": "[[[[\\"]]"}]}') == 3
    assert json_depth(b"[" * 500 + b"]" * 500) == 500


def test_safetensors_header_over_byte_limit(tmp_path: Path) -> None:
    header = json.dumps({"w": _st_entry(), "__metadata__": {"pad": "x" * 5000}}).encode()
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    with pytest.raises(CheckpointLimitError, match="header length"):
        open_checkpoint(tmp_path / "w.safetensors", limits=Limits(max_header_bytes=4096))
    assert open_checkpoint(tmp_path / "w.safetensors").tensors["w"].nbytes == 16  # default limit: fine


def test_safetensors_too_many_tensors(tmp_path: Path) -> None:
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(50)}
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(json.dumps(header).encode(), b"\0" * 200))
    with pytest.raises(CheckpointLimitError, match="tensor count"):
        open_checkpoint(tmp_path / "w.safetensors", limits=Limits(max_tensors=10))
    assert len(open_checkpoint(tmp_path / "w.safetensors").tensors) == 50


@pytest.mark.parametrize("number", ["1" * 401, "-" + "9" * 64])
def test_safetensors_header_huge_integer(tmp_path: Path, number: str) -> None:
    header = ('{"w": {"dtype": "F32", "shape": [' + number + '], "data_offsets": [0, 16]}}').encode()
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    with pytest.raises(CheckpointLimitError, match="digits"):
        open_checkpoint(tmp_path / "w.safetensors")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_safetensors_header_non_finite_numbers(tmp_path: Path, constant: str) -> None:
    header = ('{"__metadata__": {}, "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "x": '
              + constant + "}}").encode()  # fmt: skip
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    with pytest.raises(CheckpointError, match="not JSON"):
        open_checkpoint(tmp_path / "w.safetensors")


@pytest.mark.parametrize("dtype", ["F8_E4M3", "F8_E5M2"])
def test_float8_norm_tensor_is_named(tmp_path: Path, dtype: str) -> None:
    header = json.dumps({"ln_f.weight": {"dtype": dtype, "shape": [8], "data_offsets": [0, 8]},
                         "ln_f.bias": {"dtype": "F32", "shape": [8], "data_offsets": [8, 40]}}).encode()  # fmt: skip
    (tmp_path / "model.safetensors").write_bytes(raw_safetensors(header, b"\x38" * 8 + b"\0" * 32))
    ck = open_checkpoint(tmp_path / "model.safetensors")  # listing is fine
    assert ck.read(["ln_f.bias"])["ln_f.bias"].shape == (8,)  # control: the F32 neighbour reads
    with pytest.raises(UnsupportedDtypeError, match=rf"'ln_f.weight' is stored as {dtype}"):
        ck.read(["ln_f.weight"])


@pytest.mark.parametrize("dtype", ["F4", "C64", "Q8", ""])
def test_unknown_safetensors_dtype_at_listing(tmp_path: Path, dtype: str) -> None:
    header = json.dumps({"w": _st_entry(dtype)}).encode()
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    with pytest.raises(UnsupportedDtypeError, match="'w'"):
        open_checkpoint(tmp_path / "w.safetensors")


@pytest.mark.parametrize("shape", [[-4], [2, -2], [1] * 17])
def test_safetensors_impossible_shapes(tmp_path: Path, shape: list[int]) -> None:
    header = json.dumps({"w": _st_entry(shape=shape)}).encode()
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    with pytest.raises(CheckpointError, match="'w'"):
        open_checkpoint(tmp_path / "w.safetensors")


def test_safetensors_metadata_not_an_object(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": [1, 2], "w": _st_entry()}).encode()
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    with pytest.raises(CheckpointError, match="__metadata__"):
        open_checkpoint(tmp_path / "w.safetensors")


# ----------------------------------------------------------------------------- config.json and index


@pytest.mark.parametrize("config", [
    "[" * 100_000 + "]" * 100_000,
    '{"model_type": "gpt2", "x": ' + "{\"a\": " * 5000 + "1" + "}" * 5000 + "}",
])  # fmt: skip
def test_config_nested_too_deep(st_folder: Callable[..., Path], config: str) -> None:
    with pytest.raises(CheckpointLimitError, match=r"config.json JSON nesting depth"):
        open_checkpoint(st_folder(config=config))


@pytest.mark.parametrize("eps", ["1" * 401, "1" + "0" * 40])
def test_config_huge_integer_epsilon(st_folder: Callable[..., Path], eps: str) -> None:
    folder = st_folder(config='{"model_type": "gpt2", "n_embd": 8, "layer_norm_epsilon": ' + eps + "}")
    with pytest.raises(CheckpointLimitError, match="digits"):
        open_checkpoint(folder)
    with pytest.raises(CheckpointLimitError):
        deadir.scan(folder)


@pytest.mark.parametrize("eps", ["1e400", "-1e999", "NaN", "Infinity"])
def test_config_epsilon_overflowing_float(st_folder: Callable[..., Path], eps: str) -> None:
    folder = st_folder(config='{"model_type": "gpt2", "n_embd": 8, "layer_norm_epsilon": ' + eps + "}")
    with pytest.raises(CheckpointError, match=r"config.json"):
        deadir.scan(folder)


def test_config_control_scans(st_folder: Callable[..., Path]) -> None:
    report = deadir.scan(st_folder())
    assert [s.site.path for s in report.sites] == ["ln_f"]


@pytest.mark.parametrize("config", ["[1, 2]", '"text"', "null", "{", "\xff\xfe"])
def test_config_not_an_object(st_folder: Callable[..., Path], config: str) -> None:
    with pytest.raises(CheckpointError, match=r"config.json"):
        open_checkpoint(st_folder(config=config))


def test_index_nested_too_deep(tmp_path: Path) -> None:
    folder = write_safetensors_sharded(tmp_path / "ck", None, [{"a": np.ones(4, np.float32)}])
    (folder / "model.safetensors.index.json").write_text('{"weight_map": ' + "[" * 10_000 + "]" * 10_000 + "}")
    with pytest.raises(CheckpointLimitError, match="nesting depth"):
        open_checkpoint(folder)


@pytest.mark.parametrize("weight_map", [[], {"a": 3}, {"a": ""}, {"a": None}])
def test_index_weight_map_malformed(tmp_path: Path, weight_map: object) -> None:
    folder = write_safetensors_sharded(tmp_path / "ck", None, [{"a": np.ones(4, np.float32)}])
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match="corrupt safetensors index"):
        open_checkpoint(folder)


# ----------------------------------------------------------------------------- GGUF


def _nested_array(depth: int) -> bytes:
    # key "x", type ARRAY; each level: element type ARRAY, count 1; innermost: UINT8 count 0
    out = gguf_string("x") + struct.pack("<I", 9)
    out += (struct.pack("<IQ", 9, 1)) * (depth - 1) + struct.pack("<IQ", 0, 0)
    return out


@pytest.mark.parametrize("depth", [9, 1_000, 100_000])
def test_gguf_array_nesting_too_deep(tmp_path: Path, depth: int) -> None:
    (tmp_path / "m.gguf").write_bytes(raw_gguf(_nested_array(depth), n_kv=1))
    with pytest.raises(CheckpointLimitError, match="array nesting depth"):
        open_checkpoint(tmp_path / "m.gguf")


def test_gguf_array_nesting_control(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(raw_gguf(_nested_array(8), n_kv=1))
    value = open_checkpoint(tmp_path / "m.gguf").config["x"]
    for _ in range(7):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []


@pytest.mark.parametrize(("field", "n_kv", "n_tensors"), [
    ("metadata entry count", 10**9, 0), ("tensor count", 0, 2_000_000), ("tensor count", 0, 2**63),
])  # fmt: skip
def test_gguf_count_claims_beyond_limits(tmp_path: Path, field: str, n_kv: int, n_tensors: int) -> None:
    (tmp_path / "m.gguf").write_bytes(raw_gguf(n_kv=n_kv, n_tensors=n_tensors))
    with pytest.raises(CheckpointLimitError, match=field):
        open_checkpoint(tmp_path / "m.gguf")


@pytest.mark.parametrize("length", [2**40, 2**64 - 1, 16 * 2**20 + 1])
def test_gguf_string_length_claims(tmp_path: Path, length: int) -> None:
    kv = struct.pack("<Q", length) + b"key"
    (tmp_path / "m.gguf").write_bytes(raw_gguf(kv, n_kv=1))
    with pytest.raises(CheckpointLimitError, match="string length"):
        open_checkpoint(tmp_path / "m.gguf")


def test_gguf_skipped_string_array_with_huge_entry(tmp_path: Path) -> None:
    kv = gguf_string("tok") + struct.pack("<IIQ", 9, 8, 5000) + struct.pack("<Q", 2**50)
    (tmp_path / "m.gguf").write_bytes(raw_gguf(kv, n_kv=1))
    with pytest.raises(CheckpointLimitError, match="string length"):
        open_checkpoint(tmp_path / "m.gguf")


@pytest.mark.parametrize("vtype", [13, 99, 2**31])
def test_gguf_unknown_value_type(tmp_path: Path, vtype: int) -> None:
    (tmp_path / "m.gguf").write_bytes(raw_gguf(gguf_string("k") + struct.pack("<I", vtype), n_kv=1))
    with pytest.raises(CheckpointError, match="unknown value type"):
        open_checkpoint(tmp_path / "m.gguf")


def test_gguf_unknown_ggml_type_names_tensor(tmp_path: Path) -> None:
    info = gguf_string("blk.0.attn_norm.weight") + struct.pack("<I", 1) + struct.pack("<Q", 8)
    info += struct.pack("<IQ", 250, 0)
    (tmp_path / "m.gguf").write_bytes(raw_gguf(tensors=info, n_tensors=1))
    with pytest.raises(UnsupportedDtypeError, match=r"'blk.0.attn_norm.weight' has unknown GGML type 250"):
        open_checkpoint(tmp_path / "m.gguf")


@pytest.mark.parametrize("alignment", [0, 3, -1, 48])
def test_gguf_bad_alignment(tmp_path: Path, alignment: int) -> None:
    kv = gguf_string("general.alignment") + struct.pack("<Ii", 5, alignment)
    (tmp_path / "m.gguf").write_bytes(raw_gguf(kv, n_kv=1))
    with pytest.raises(CheckpointError, match=r"general.alignment"):
        open_checkpoint(tmp_path / "m.gguf")


def _llama_gguf(path: Path, final_len: int, d: int = 8) -> Path:
    tensors = {
        "token_embd.weight": np.ones((16, d)),
        "blk.0.attn_norm.weight": np.linspace(0.5, 2, d),
        "blk.0.ffn_norm.weight": np.linspace(0.5, 2, d),
        "output_norm.weight": np.linspace(0.5, 2, final_len),
    }
    return write_gguf(path, "llama", tensors, d=d, blocks=1, eps=1e-5)  # fmt: skip


@pytest.mark.parametrize("final_len", [3, 16])
def test_gguf_norm_length_contradicts_embedding_length(tmp_path: Path, final_len: int) -> None:
    with pytest.raises(ConfigMismatchError, match=r"'output_norm.weight' has shape \(" + str(final_len)):
        deadir.scan(_llama_gguf(tmp_path / "m.gguf", final_len))


def test_gguf_norm_length_control(tmp_path: Path) -> None:
    report = deadir.scan(_llama_gguf(tmp_path / "m.gguf", 8))
    assert {s.site.spec.size for s in report.sites} == {8}


# ----------------------------------------------------------------------------- CTranslate2


def test_ct2_variable_count_beyond_limit(tmp_path: Path) -> None:
    data = struct.pack("<I", 6) + b"\x05\x00Spec\0" + struct.pack("<II", 1, 2_000_000)
    (tmp_path / "model.bin").write_bytes(data + b"\0" * 64)
    with pytest.raises(CheckpointLimitError, match="variable count"):
        open_checkpoint(tmp_path / "model.bin")


def test_ct2_alias_count_beyond_limit(tmp_path: Path) -> None:
    file = write_ct2(tmp_path / "model.bin", {"a/gamma": np.ones(4, np.float32)})
    data = file.read_bytes()
    file.write_bytes(data[:-4] + struct.pack("<I", 2**31))
    with pytest.raises(CheckpointLimitError, match="alias count"):
        open_checkpoint(file)
    file.write_bytes(data)
    assert set(open_checkpoint(file).tensors) == {"a/gamma"}


def test_write_safetensors_roundtrip_control(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "w.safetensors", {"a": np.arange(3, dtype=np.float16)})
    assert open_checkpoint(tmp_path / "w.safetensors").read(["a"])["a"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_safetensors_header_of_128_bytes_is_not_taken_for_a_pickle(tmp_path: Path, pad: int) -> None:
    """Found by this suite: a header length of 128 (mod 256) starts the file with 0x80, a pickle's first byte."""
    base = json.dumps({"w": _st_entry()}).encode()
    header = base[:-1] + b" " * (128 + 256 * pad - len(base)) + b"}"
    assert len(header) % 256 == 128
    (tmp_path / "w.safetensors").write_bytes(raw_safetensors(header, b"\0" * 16))
    assert open_checkpoint(tmp_path / "w.safetensors").format == "safetensors"
