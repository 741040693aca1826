"""The ``config.json`` beside a checkpoint's weights, read as untrusted JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deadir.errors import CheckpointError
from deadir.io.files import inside_folder, read_small_file
from deadir.io.limits import Limits, load_json

__all__ = ["CONFIG_FILE", "read_config_beside"]

CONFIG_FILE = "config.json"


def read_config_beside(folder: Path, limits: Limits) -> tuple[dict[str, Any], Path | None]:
    """(config dict, its file) for the ``config.json`` in ``folder``; ({}, None) when there is none.

    Raises:
        CheckpointError: config.json is not valid JSON or not a JSON object.
        UnsafeCheckpointError: it is a FIFO/device, or a symlink out of the folder.
        CheckpointLimitError: it is larger or deeper than the limits.
    """
    if not os.path.lexists(folder / CONFIG_FILE):
        return {}, None
    file = inside_folder(Path(CONFIG_FILE), folder, "config file")
    config = load_json(read_small_file(file, limits.max_json_bytes, "config.json"), file, "config.json", limits)
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: not a JSON object")
    return config, file
