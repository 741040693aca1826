"""Poisoned baselines: the CI gate fails closed (exit 2), never reports "no normalisation change"."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from deadir.cli import main
from deadir.scan import BaselineError, load_baseline
from deadir.scan.baseline import MAX_JSON_DEPTH


def _checkpoint(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    tensors = {
        "model.layers.0.input_layernorm.weight": rng.uniform(0.5, 2.0, 8).astype(np.float32),
        "model.layers.0.input_layernorm.bias": rng.normal(size=8).astype(np.float32),
        "model.final_layer_norm.weight": rng.uniform(0.5, 2.0, 8).astype(np.float32),
        "model.final_layer_norm.bias": rng.normal(size=8).astype(np.float32),
    }
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "hidden_size": 8,
                                                     "layer_norm_eps": 1e-5}))
    return folder


@pytest.fixture
def ckpt_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, Any]]:
    ckpt = _checkpoint(tmp_path / "ckpt")
    assert main(["scan", str(ckpt), "--json"]) == 0
    return ckpt, json.loads(capsys.readouterr().out)


def _first_direction_site(report: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in report["sites"] if s.get("direction") is not None)


def _set_first_direction(value: Callable[[list[float]], Any]) -> Callable[[dict[str, Any]], None]:
    def edit(report: dict[str, Any]) -> None:
        site = _first_direction_site(report)
        site["direction"] = value(site["direction"])
    return edit


def _raw(text: str) -> Callable[[dict[str, Any]], str]:
    return lambda report: text


POISONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "direction-nan": _set_first_direction(lambda v: [math.nan, *v[1:]]),
    "direction-inf": _set_first_direction(lambda v: [math.inf, *v[1:]]),
    "direction-all-nan": _set_first_direction(lambda v: [math.nan] * len(v)),
    "direction-zero": _set_first_direction(lambda v: [0.0] * len(v)),
    "direction-not-unit": _set_first_direction(lambda v: [2 * x for x in v]),
    "direction-short": _set_first_direction(lambda v: v[:-1]),
    "direction-strings": _set_first_direction(lambda v: [str(x) for x in v]),
    "direction-bools": _set_first_direction(lambda v: [True] * len(v)),
    "direction-missing-on-layernorm": _set_first_direction(lambda v: None),
    "kind-unknown": lambda r: r["sites"][0].update(kind="magicnorm"),
    "d-zero": lambda r: r["sites"][0].update(d=0),
    "d-string": lambda r: r["sites"][0].update(d="8"),
    "offset-nan": lambda r: r["sites"][0].update(weight_offset=math.nan),
    "degenerate-out-of-range": lambda r: r["sites"][0].update(degenerate=[99]),
    "site-duplicated": lambda r: r["sites"].append(dict(r["sites"][0])),
    "sites-not-a-list": lambda r: r.update(sites={"a": 1}),
    "wrong-schema-version": lambda r: r.update(deadir_scan=2),
    "not-a-report": lambda r: r.clear(),
    "json-array": _raw("[1, 2, 3]"),
    "json-truncated": _raw('{"deadir_scan": 1, "sites": ['),
    "json-NaN-literal": _raw('{"deadir_scan": 1, "sites": [], "x": NaN}'),
    "json-deep": _raw("[" * 100_000 + "]" * 100_000),
    "json-deep-object": _raw('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)),
    "not-utf8": _raw("\udcff"),
}


@pytest.mark.parametrize("name", sorted(POISONS))
def test_poisoned_baseline_fails_closed(name: str, ckpt_and_report: tuple[Path, dict[str, Any]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, report = ckpt_and_report
    poisoned = json.loads(json.dumps(report))
    result = POISONS[name](poisoned)
    path = tmp_path / "baseline.json"
    if isinstance(result, str):
        path.write_bytes(result.encode("utf-8", errors="surrogateescape"))
    else:
        path.write_text(json.dumps(poisoned, allow_nan=True))
    with pytest.raises(BaselineError):
        load_baseline(path)
    assert main(["scan", str(ckpt), "--baseline", str(path)]) == 2
    captured = capsys.readouterr()
    assert "no normalisation change" not in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""  # nothing printed before the refusal


def test_valid_baseline_passes_the_same_gate(ckpt_and_report: tuple[Path, dict[str, Any]], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The unpoisoned report is accepted: the refusals above are about the poison, not the harness."""
    ckpt, report = ckpt_and_report
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(report))
    assert main(["scan", str(ckpt), "--baseline", str(path)]) == 0
    assert "no normalisation change" in capsys.readouterr().out


def test_fifo_baseline_is_refused_without_blocking(ckpt_and_report: tuple[Path, dict[str, Any]],
                                                   tmp_path: Path) -> None:
    fifo = tmp_path / "baseline.fifo"
    os.mkfifo(fifo)
    with pytest.raises(BaselineError, match="not a regular file"):
        load_baseline(fifo)


@pytest.mark.parametrize("make", ["folder", "missing", "devnull"])
def test_non_file_baselines(make: str, tmp_path: Path) -> None:
    path = {"folder": tmp_path, "missing": tmp_path / "nope.json", "devnull": Path(os.devnull)}[make]
    with pytest.raises(BaselineError):
        load_baseline(path)


def test_oversized_baseline_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deadir.scan.baseline as baseline

    path = tmp_path / "big.json"
    path.write_text(" " * 2048)
    monkeypatch.setattr(baseline, "MAX_BASELINE_BYTES", 1024)
    with pytest.raises(BaselineError, match="limit"):
        baseline.load_baseline(path)
