"""Bad CLI options: exit 2 with a one-line error naming the option, no traceback, nothing printed first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from deadir.cli import main
from deadir.errors import InputShapeError
from deadir.models import random_model
from deadir.models.inputs import make_inputs


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(0)
    save_file({"model.final_layer_norm.weight": rng.uniform(0.5, 2, 8).astype(np.float32),
               "model.final_layer_norm.bias": rng.normal(size=8).astype(np.float32)},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "hidden_size": 8}))
    return folder


SCAN_BAD = {
    "max-angle-nan": ["--max-angle", "nan"],
    "max-angle-negative": ["--max-angle=-1"],
    "max-angle-zero": ["--max-angle", "0"],
    "max-angle-too-big": ["--max-angle", "2"],
    "dead-rel-tol-nan": ["--dead-rel-tol", "nan"],
    "dead-rel-tol-negative": ["--dead-rel-tol=-1e-6"],
    "dead-rel-tol-one": ["--dead-rel-tol", "1"],
    "dead-rel-tol-inf": ["--dead-rel-tol", "inf"],
    "output-under-a-file": ["--output", "/etc/hostname/sub/x.json"],
    "output-is-folder": ["--output", "/tmp"],
    "plot-under-a-file": ["--plot", "/etc/hostname/x.png"],
    "baseline-missing": ["--baseline", "/nonexistent-deadir/b.json"],
}


@pytest.mark.parametrize("name", sorted(SCAN_BAD))
def test_scan_bad_option(name: str, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(ckpt), *SCAN_BAD[name]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("deadir scan: error:") and "Traceback" not in captured.err


def test_scan_good_options_pass(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Control: the same options with valid values run."""
    out = tmp_path / "r.json"
    assert main(["scan", str(ckpt), "--max-angle", "1e-3", "--dead-rel-tol", "1e-6", "--output", str(out)]) == 0
    assert out.is_file()


VERIFY_BAD = {
    "tokens-one": ["--tokens", "1"],
    "tokens-negative": ["--tokens=-5"],
    "seq-len-zero": ["--seq-len", "0"],
    "seq-len-negative": ["--seq-len=-3"],
    "batch-size-zero": ["--batch-size", "0"],
    "fisher-samples-zero": ["--fisher-samples", "0"],
    "fisher-random-zero": ["--fisher-random", "0"],
    "max-input-gib-nan": ["--max-input-gib", "nan"],
    "max-input-gib-zero": ["--max-input-gib", "0"],
    "output-under-a-file": ["--output", "/etc/hostname/sub/x.json"],
    "plot-is-folder": ["--plot", "/tmp"],
    "speech-tokens-huge": ["--tokens", "1000000000"],
    "text-tokens-over-limit": ["--tokens", "100000", "--max-input-gib", "1e-6"],
}


@pytest.mark.parametrize("name", sorted(VERIFY_BAD))
def test_verify_bad_option(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    model = "random:whisper" if name == "speech-tokens-huge" else "random:gpt2"
    assert main(["verify", model, "--no-progress", *VERIFY_BAD[name]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("deadir verify: error:") and "Traceback" not in captured.err


@pytest.mark.parametrize(("model_type", "tokens"), [("whisper", 10**9), ("vit", 10**9), ("gpt2", 10**12)])
def test_make_inputs_refuses_huge_requests_at_once(model_type: str, tokens: int) -> None:
    with pytest.raises(InputShapeError, match="input limit"):
        make_inputs(random_model(model_type), n_tokens=tokens)


@pytest.mark.parametrize("seq_len", [0, -1])
def test_make_inputs_seq_len_zero_is_not_the_default(seq_len: int) -> None:
    with pytest.raises(InputShapeError, match="seq_len"):
        make_inputs(random_model("gpt2"), n_tokens=64, seq_len=seq_len)
