"""deadir.scan on the real offline checkpoints of shared/CHECKPOINTS.md.

Run ``python -m integration.fetch_checkpoints`` first (or point $DEADIR_CHECKPOINTS at a
folder it filled); without a manifest every test here is skipped with that reason.
Timings are not asserted here (see benchmarks/); the numbers are in the scan reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deadir.cli import main
from deadir.precision import DEAD_CHANNEL_REL_TOL
from deadir.scan import ScanReport, scan
from integration.fetch_checkpoints import missing_checkpoint

pytestmark = pytest.mark.integration


def _manifest() -> dict[str, dict[str, Any]] | None:
    from integration.fetch_checkpoints import load_manifest

    try:
        return load_manifest()
    except FileNotFoundError:
        return None


MANIFEST = _manifest()


@pytest.fixture(autouse=True)
def _needs_manifest() -> None:
    if MANIFEST is None:
        missing_checkpoint("no .checkpoints/manifest.json: run `python -m integration.fetch_checkpoints`")

# model -> (number of norm sites, kind, weight offset, predicted kernel)
EXPECTED = {
    "minilm": (13, "layernorm", 0.0, True),  # embeddings + 2 per block × 6
    "mpnet": (25, "layernorm", 0.0, True),  # embeddings + 2 per block × 12
    "whisper-base": (32, "layernorm", 0.0, True),  # encoder 2×6 + final, decoder 3×6 + final
    "gemma3-270m": (109, "rmsnorm", 1.0, False),  # 6 per block × 18 + final
    "qwen2.5-0.5b": (49, "rmsnorm", 0.0, False),  # 2 per block × 24 + final
    "smollm2-135m": (61, "rmsnorm", 0.0, False),  # 2 per block × 30 + final
}

_CACHE: dict[str, ScanReport] = {}


def _scan(name: str) -> ScanReport:
    if MANIFEST is None or name not in MANIFEST:
        missing_checkpoint(f"{name} is not in the checkpoint manifest")
    if name not in _CACHE:
        _CACHE[name] = scan(MANIFEST[name]["path"])
    return _CACHE[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_real_checkpoint_scans_from_its_norm_tensors(name: str) -> None:
    n_sites, kind, offset, kernel = EXPECTED[name]
    assert MANIFEST is not None
    entry = MANIFEST[name]
    report = _scan(name)
    assert report.arch_known and not report.warnings and not any(s.guessed for s in report.sites)
    assert len(report.sites) == n_sites
    assert {(s.site.spec.kind, s.site.spec.weight_offset, s.kernel_predicted) for s in report.sites} == {
        (kind, offset, kernel)}
    assert {s.site.spec.size for s in report.sites if s.site.role != "attention-qk"} == {entry["d_model"]}
    assert all(s.site.spec.eps == pytest.approx(entry["eps"], rel=1e-6) for s in report.sites)
    # only the norm tensors are read: a tiny fraction of the file
    assert report.bytes_read < 2e-3 * report.bytes_total
    finals = [s for s in report.sites if s.site.role == "final"]
    assert len(finals) == (2 if name == "whisper-base" else 1)  # post-LN encoders: the last block's output norm
    for s in report.sites:
        if s.direction is not None:  # v ∝ 1/γ: unit length, one sign relative to γ throughout
            signs = np.sign(s.direction * s.gamma)[s.direction != 0]
            assert abs(np.linalg.norm(s.direction) - 1.0) < 1e-12 and np.all(signs == signs[0])


def test_minilm_dead_channels() -> None:
    report = _scan("minilm")
    dead = {s.site.path: s for s in report.sites if s.dead}
    assert list(dead) == ["encoder.layer.5.output.LayerNorm"]
    s = dead["encoder.layer.5.output.LayerNorm"]
    assert len(s.dead) == 3 and np.all(np.abs(s.gamma[list(s.dead)]) < 1e-8 * s.gamma_median)
    assert s.gamma_min < 1e-32 and s.degenerate == () and s.kernel == "inverse-scale"
    assert s.live_fraction is not None and s.live_fraction < 1e-20  # v is the dead axes: say so separately
    assert all(t.live_fraction == 1.0 for t in report.sites if t is not s)


def test_mpnet_dead_channels() -> None:
    report = _scan("mpnet")
    dead = {s.site.path: s for s in report.sites if s.dead}
    assert list(dead) == ["encoder.layer.11.output.LayerNorm"]
    s = dead["encoder.layer.11.output.LayerNorm"]
    rel = np.sort(np.abs(s.gamma)) / s.gamma_median
    # three gains at ≤ 2.8e-7·median are dead under the one threshold (DEAD_CHANNEL_REL_TOL = 1e-6); the fourth
    # smallest, 4.4e-6·median, was a dead channel under scan's former 1e-5 and is live now (scan and verify agree)
    assert len(s.dead) == 3 and rel[2] < DEAD_CHANNEL_REL_TOL < rel[3] < 1e-5 < 0.1 < rel[4]
    assert s.gamma_min < 1e-32


def test_gemma3_effective_gain_one_plus_w() -> None:
    report = _scan("gemma3-270m")
    final = report.site("output_norm")
    assert final.site.role == "final" and final.site.spec.weight_offset == 1.0
    assert final.gamma_min == pytest.approx(0.1875) and final.gamma_median == pytest.approx(9.28125)
    assert final.gamma_min / final.gamma_median == pytest.approx(0.0202, abs=1e-4)
    # stored 1 + w, read back as w with offset 1: effective γ equals the stored values
    assert np.all(final.site.spec.weight + 1.0 == final.gamma)
    qk = [s for s in report.sites if s.site.role == "attention-qk"]
    assert len(qk) == 36 and {s.site.spec.size for s in qk} == {256}
    # Gemma 3 ships exact zero effective gains (w = -1 in bfloat16): reported, not raised
    zero = [s for s in report.sites if s.degenerate]
    assert zero and all(np.all(s.gamma[list(s.degenerate)] == 0.0) and set(s.degenerate) <= set(s.dead)
                        for s in zero)
    assert all(s.kernel == "none" for s in zero)


def test_qwen25_tiny_negative_final_gain() -> None:
    report = _scan("qwen2.5-0.5b")
    final = report.site("output_norm")
    g = final.gamma
    assert g[final.gamma_argmin] == pytest.approx(-0.066, abs=1e-3) and final.gamma_median == pytest.approx(7.03, 1e-3)
    assert final.kernel == "none" and final.direction is None and final.dead == ()


def test_smollm2_rms_sites() -> None:
    report = _scan("smollm2-135m")
    assert all(s.kernel == "none" and s.site.spec.kind == "rmsnorm" for s in report.sites)
    roles = {s.site.role for s in report.sites}
    assert roles == {"block-input", "final"}
    assert report.site("blk.29.ffn_norm").site.block == 29
    assert all(s.dead == () for s in report.sites)  # smallest gain 1.6e-4 of the median: live


def test_whisper_clean_layernorms() -> None:
    report = _scan("whisper-base")
    enc = report.site("encoder/layer_norm")
    assert enc.site.stack == "encoder" and enc.kernel == "inverse-scale" and enc.dead == ()
    assert {s.stored_dtype for s in report.sites} == {"F16"}


def test_cli_baseline_gate_on_a_real_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert MANIFEST is not None
    path = MANIFEST["minilm"]["path"]
    assert main(["scan", path, "--json", "--output", str(tmp_path / "base.json")]) == 0
    capsys.readouterr()
    assert main(["scan", path, "--baseline", str(tmp_path / "base.json")]) == 0
    base = json.loads((tmp_path / "base.json").read_text())
    base["sites"][0]["kind"] = "rmsnorm"
    base["sites"][0]["kernel_predicted"] = False
    (tmp_path / "edited.json").write_text(json.dumps(base))
    assert main(["scan", path, "--baseline", str(tmp_path / "edited.json")]) == 1
    out = capsys.readouterr().out
    assert "embeddings.LayerNorm: kind: rmsnorm -> layernorm" in out
