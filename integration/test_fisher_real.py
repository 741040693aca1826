"""Directional Fisher information on a real LayerNorm checkpoint (all-MiniLM-L6-v2, BERT post-LN).

The checkpoint folder comes from ``$DEADIR_CHECKPOINTS`` or ``<repo>/.checkpoints`` (written by
``python -m integration.fetch_checkpoints``); its ``manifest.json`` names the MiniLM folder. The
sentence-transformers checkpoint has no head, so a 5-class sequence-classification head is added
(random-init, seed 0; the pooler is real): the dead directions all live in the real encoder and
pooler. Floors: FisherProbe.fisher_floor / change_floor (see tests/test_fisher.py).
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

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _minilm_folder() -> Path | None:
    env = os.environ.get("DEADIR_CHECKPOINTS")
    root = Path(env).expanduser() if env else REPO / ".checkpoints"
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return None
    entry = json.loads(manifest.read_text()).get("models", {}).get("minilm")
    if not entry:
        return None
    folder = root / entry["path"]
    return folder if (folder / "model.safetensors").is_file() else None


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, dict[str, torch.Tensor]]:
    folder = _minilm_folder()
    if folder is None:
        pytest.skip("MiniLM checkpoint absent: run `python -m integration.fetch_checkpoints` "
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


def test_minilm_dead_directions_have_zero_fisher(minilm: tuple[Any, dict[str, torch.Tensor]]) -> None:
    model, inputs = minilm
    report = fisher_report(model, inputs, n_random=3, seed=0)
    print("\n" + report.render())
    families = {r.family for r in report.rows}
    assert families == {"read-bias", "write-residual"}
    for row in report.rows:
        assert row.exact and row.measured == "dead", row
        assert row.median_random_fisher > 1e3 * row.floor, row
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
