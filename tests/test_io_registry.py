"""deadir.io.registry: format detection, refusals (pickles, unknown bytes, empty folders) and config.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from deadir.errors import CheckpointError
from deadir.io import detect_format, list_tensors, read_config
from deadir.testing.checkpoints import write_safetensors


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
    write_safetensors(tmp_path / "model.safetensors", st_tensors)
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_config(tmp_path)
