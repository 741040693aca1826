"""deadir.verify.plot: the spectrum PNG, written atomically."""

from __future__ import annotations

from pathlib import Path

from deadir.verify import plot_spectrum


def test_plot_spectrum(tmp_path: Path, gpt2_report) -> None:  # type: ignore[no-untyped-def]
    out = plot_spectrum(gpt2_report, str(tmp_path / "sub" / "spectrum.png"), init=gpt2_report)
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
