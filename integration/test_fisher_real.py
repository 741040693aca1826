"""Directional Fisher information on real checkpoints: MiniLM (LayerNorm) and SmolLM2 (RMSNorm control).

The checkpoint folder comes from ``$DEADIR_CHECKPOINTS`` or ``<repo>/.checkpoints`` (written by
``python -m integration.fetch_checkpoints``); its ``manifest.json`` names the MiniLM folder. The
sentence-transformers checkpoint has no head, so a 5-class sequence-classification head is added
(random-init, seed 0; the pooler is real): the dead directions all live in the real encoder and
pooler. Floors: FisherProbe.fisher_floor / change_floor (see tests/test_fisher.py).

Negative control on real weights: SmolLM2-135M (Llama, RMSNorm, GGUF Q4_1 dequantised by
transformers): the same formulas built on its first and last blocks and its tied head are live.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deadir.fisher import FisherProbe, dead_parameter_directions, fisher_report
from integration import report as integration_report
from integration.fetch_checkpoints import missing_checkpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _checkpoint(name: str) -> Path | None:
    env = os.environ.get("DEADIR_CHECKPOINTS")
    root = Path(env).expanduser() if env else REPO / ".checkpoints"
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return None
    entry = json.loads(manifest.read_text()).get("models", {}).get(name)
    if not entry:
        return None
    path = root / entry["path"]
    return path if path.exists() else None


def _minilm_folder() -> Path | None:
    folder = _checkpoint("minilm")
    return folder if folder is not None and (folder / "model.safetensors").is_file() else None


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, dict[str, torch.Tensor]]:
    folder = _minilm_folder()
    if folder is None:
        missing_checkpoint("MiniLM checkpoint absent: run `python -m integration.fetch_checkpoints` "
                           "or set DEADIR_CHECKPOINTS to a folder with manifest.json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    tf.logging.set_verbosity_error()  # the load report lists the (expected) missing classifier weights
    torch.manual_seed(0)
    model = tf.BertForSequenceClassification.from_pretrained(str(folder), num_labels=5, local_files_only=True)
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    enc = tokenizer(
        ["LayerNorm hides one direction in every layer.", "The cat sat on the mat while it rained.",
         "Fisher information measures how much the output distribution moves."],
        padding=True, return_tensors="pt",
    )
    return model.eval(), dict(enc)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _record(store: Any, rows: list[dict[str, Any]]) -> None:
    """Put rows into the report's Fisher section (written at session end with the model table)."""
    store.sections.setdefault(integration_report.FISHER_SECTION, []).extend(rows)


def test_minilm_dead_directions_have_zero_fisher(store: Any, minilm: tuple[Any, dict[str, torch.Tensor]]) -> None:
    model, inputs = minilm
    report = fisher_report(model, inputs, n_random=3, seed=0)
    print("\n" + report.render())
    families = {r.family for r in report.rows}
    u = FisherProbe(model, inputs).unit_roundoff
    _record(store, [integration_report.fisher_row(
        "minilm", r.family, f"layer {r.layer}", fisher=r.max_fisher, random=r.median_random_fisher, floor=r.floor,
        unit_roundoff=u, expect="dead" if r.exact else "live", count=r.count, ratio=r.max_ratio)
        for r in report.rows])
    assert families == {"read-bias", "write-residual"}
    for row in report.rows:
        assert row.exact and row.measured == "dead", row
        assert row.median_random_fisher > 1e3 * row.floor, row
        # many orders: Fisher along the dead directions sits below u times that of random directions
        assert row.max_ratio < u, row
    # MiniLM has channels with γ ≈ 1e-33: the notes must say so
    assert any("dead channel" in n for n in report.notes)


def test_minilm_dead_directions_keep_the_output(minilm: tuple[Any, dict[str, torch.Tensor]]) -> None:
    model, inputs = minilm
    probe = FisherProbe(model, inputs)
    gen = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(1)
    directions = dead_parameter_directions(model)
    for direction in directions[:: max(1, len(directions) // 8)]:  # a spread of 8 of them
        random_change = float(np.median([
            probe.function_change(probe.random_direction(list(direction.params), gen), 0.5) for _ in range(2)
        ]))
        floor = probe.change_floor(random_change)
        change = probe.function_change(direction.perturbation(rng.standard_normal(direction.free_dim),
                                                              dtype=torch.float64), 0.5)
        print(f"{direction.family:15s} {direction.module:55s} change {change:.2e} floor {floor:.2e} "
              f"random {random_change:.2e}")
        assert change <= floor, (direction.module, change, floor)
        assert random_change > 1e3 * floor, (direction.module, random_change, floor)


@pytest.mark.slow
def test_smollm2_rmsnorm_formulas_are_live(store: Any) -> None:
    gguf = _checkpoint("smollm2-135m")
    if gguf is None or not gguf.is_file():
        missing_checkpoint("SmolLM2 GGUF absent: run `python -m integration.fetch_checkpoints` "
                           "or set DEADIR_CHECKPOINTS")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    from deadir.fisher import candidate_parameter_directions

    tf.logging.set_verbosity_error()
    model = tf.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model.eval()
    assert dead_parameter_directions(model) == []
    candidates, _ = candidate_parameter_directions(model)
    last = str(model.config.num_hidden_layers - 1)
    picked = [c for c in candidates if (c.layer in ("0", last) and c.module.rsplit(".", 1)[-1]
                                        in ("q_proj", "v_proj", "up_proj", "o_proj", "down_proj"))
              or c.family == "lm-head-softmax"]
    assert len(picked) == 11 and not any(c.exact for c in picked)
    ids = torch.tensor([[1, 504, 2365, 314, 260, 3581, 28, 2096, 1183, 30]])  # distinct tokens, one prompt
    probe = FisherProbe(model, ids)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    measured = []
    for c in picked:
        value = probe.fisher(c.perturbation(rng.standard_normal(c.free_dim), dtype=torch.float64))
        random = float(np.median([probe.fisher(probe.random_direction(list(c.params), gen)) for _ in range(2)]))
        floor = probe.fisher_floor(random)
        print(f"{c.family:15s} {c.module:45s} F {value:.2e} random {random:.2e} ratio {value / random:.2g} "
              f"floor {floor:.1e}")
        measured.append(integration_report.fisher_row(
            "smollm2-135m (RMSNorm control)", c.family, c.module, fisher=value, random=random, floor=floor,
            unit_roundoff=probe.unit_roundoff, expect="live"))
    _record(store, measured)
    for c, row in zip(picked, measured, strict=True):
        value, random, floor = row["F"], row["F random (median)"], row["floor"]
        # live: above the (float32, since Llama's code computes in float32 inside) floor and within a few
        # orders of random directions of the same tensors (measured 1e-3 .. 2)
        assert value > floor and value > 1e-4 * random, (c.module, value, random, floor)
