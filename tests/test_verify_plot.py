"""deadir.verify.plot: the spectrum PNG, written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deadir import make_inputs, verify
from deadir.models import random_model
from deadir.verify import plot_spectrum


@pytest.fixture(scope="module")
def gpt2() -> torch.nn.Module:
    return random_model("gpt2")


@pytest.fixture(scope="module")
def gpt2_report(gpt2: torch.nn.Module):  # type: ignore[no-untyped-def]
    return verify(gpt2, make_inputs(gpt2, n_tokens=512))


def test_plot_spectrum(tmp_path: Path, gpt2_report) -> None:  # type: ignore[no-untyped-def]
    out = plot_spectrum(gpt2_report, str(tmp_path / "sub" / "spectrum.png"), init=gpt2_report)
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
