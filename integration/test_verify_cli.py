"""`deadir verify PATH` as a user runs it, on real offline checkpoints of each format.

MiniLM (safetensors folder, with --random-init and --plot), Whisper base (the CTranslate2
folder) and SmolLM2 (GGUF, the RMSNorm control). Measurement tolerances are verify's own
(the rounding floor from the T10 bound), so these tests check the loader and the CLI end
to end, and that the verdicts on real weights are the expected ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deadir.cli import main
from integration.fetch_checkpoints import load_manifest, missing_checkpoint

pytestmark = pytest.mark.integration


def _path(name: str) -> str:
    try:
        manifest = load_manifest()
    except FileNotFoundError:
        missing_checkpoint("no .checkpoints/manifest.json: run `python -m integration.fetch_checkpoints`")
    if name not in manifest:
        missing_checkpoint(f"{name} is not in the checkpoint manifest")
    return str(manifest[name]["path"])


def _verify_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["verify", *args, "--sites", "final", "--json", "--no-progress"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_minilm_folder_with_random_init_twin_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "spectrum.png"
    out = _verify_json(capsys, _path("minilm"), "--tokens", "512", "--random-init", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (row,) = out["comparison"]
    assert row["path"] == "encoder.layer.5.output.LayerNorm" and row["at_floor"] and row["at_floor_init"]
    assert out["trained"]["forward_dtype"] == "float32" and "corpus tokens" in out["trained"]["inputs"]
    # MiniLM's final norm has 3 channels with γ ≈ 1e-33: reported as dead, each its own null direction
    (site,) = out["trained"]["sites"]
    assert len(site["dead_channels"]) == 3


def test_whisper_ctranslate2_folder(capsys: pytest.CaptureFixture[str]) -> None:
    out = _verify_json(capsys, _path("whisper-base"), "--tokens", "256")
    sites = {s["path"]: s for s in out["sites"]}
    assert set(sites) == {"model.encoder.layer_norm", "model.decoder.layer_norm"}
    enc = sites["model.encoder.layer_norm"]
    # the clean case of CHECKPOINTS.md: γ⁻¹ is the bottom eigenvector, separated by a gap
    assert enc["at_floor"] and enc["cos_bottom"] is not None and enc["cos_bottom"] > 1 - 1e-6


def test_smollm2_gguf_rmsnorm_control(capsys: pytest.CaptureFixture[str]) -> None:
    out = _verify_json(capsys, _path("smollm2-135m"), "--tokens", "256")
    (site,) = out["sites"]
    assert site["kind"] == "rmsnorm" and site["predicted"] == "control" and not site["at_floor"]
