"""The benchmark harness's logic: statistics, ratios, targets, repeat control, JSON and Markdown.

No timing is asserted: the clock is a fake that advances by given amounts.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import bench_checkpoints, bench_linalg, synthetic
from benchmarks.harness import (
    RateRow,
    RatioRow,
    SkippedRow,
    Stats,
    Target,
    Timing,
    machine_header,
    ratio_stats,
    render_markdown,
    render_text,
    time_repeats,
    write_results,
)


class FakeClock:
    """Returns 0, then advances by the next step on every second call (start/stop of one timing)."""

    def __init__(self, durations: list[float]) -> None:
        self.durations = list(durations)
        self.now = 0.0
        self.calls = 0

    def __call__(self) -> float:
        if self.calls % 2 == 1:
            self.now += self.durations.pop(0)
        self.calls += 1
        return self.now


def test_stats_min_median_max() -> None:
    s = Stats.of([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.min, s.median, s.max) == (4, 1.0, 2.5, 10.0)
    assert Stats.of([7.0]).median == 7.0


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [1.0, -1.0], [math.inf]])
def test_stats_rejects_bad_samples(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="samples"):
        Stats.of(bad)


def test_ratio_stats_pairs_worst_and_best() -> None:
    slow = Stats.of([10.0, 20.0, 30.0])
    fast = Stats.of([1.0, 2.0, 4.0])
    r = ratio_stats(slow, fast)
    assert r.median == 10.0  # 20 / 2
    assert r.min == 2.5  # 10 / 4: least favourable pairing
    assert r.max == 30.0  # 30 / 1: most favourable pairing
    assert r.min <= r.median <= r.max


def test_ratio_stats_zero_fast_time_is_infinite_not_an_error() -> None:
    r = ratio_stats(Stats.of([1.0]), Stats.of([0.0]))
    assert math.isinf(r.median) and math.isinf(r.max) and math.isinf(r.min)


def test_target_met_margin_and_verdict() -> None:
    at_least = Target(">=", 100.0)
    assert at_least.met(250.0) and not at_least.met(50.0)
    assert at_least.margin(250.0) == 2.5
    assert at_least.verdict(50.0) == "MISSED by 2×"
    at_most = Target("<=", 10.0)
    assert at_most.met(5.0) and not at_most.met(40.0)
    assert at_most.margin(40.0) == 0.25
    assert at_most.verdict(40.0) == "MISSED by 4×"
    assert at_most.verdict(5.0).startswith("met")


@pytest.mark.parametrize(("op", "value"), [("==", 1.0), (">=", 0.0), (">=", math.inf)])
def test_target_rejects_bad_definitions(op: str, value: float) -> None:
    with pytest.raises(ValueError, match="Target"):
        Target(op, value)


def test_time_repeats_stops_at_budget_after_min_repeats() -> None:
    calls: list[int] = []
    clock = FakeClock([0.125, 2.0, 2.0, 2.0, 2.0, 2.0])  # dyadic: the fake clock's sums are exact
    t = time_repeats(lambda: calls.append(1), "x", min_repeats=2, max_repeats=10, budget_s=3.0, warmup=1, clock=clock)
    # warmup untimed (1 call), then 0.125 + 2.0 (< 3.0 budget) + 2.0 -> stop at 4.125 s spent
    assert t.samples == (0.125, 2.0, 2.0)
    assert len(calls) == 4


def test_time_repeats_honours_min_and_max() -> None:
    t = time_repeats(lambda: None, "x", min_repeats=3, max_repeats=3, budget_s=0.0, warmup=0,
                     clock=FakeClock([5.0] * 10))
    assert t.samples == (5.0, 5.0, 5.0)
    t = time_repeats(lambda: None, "x", min_repeats=1, max_repeats=4, budget_s=1e9, warmup=0,
                     clock=FakeClock([1.0] * 10))
    assert len(t.samples) == 4


def test_time_repeats_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_repeats"):
        time_repeats(lambda: None, "x", min_repeats=0)
    with pytest.raises(ValueError, match="max_repeats"):
        time_repeats(lambda: None, "x", min_repeats=3, max_repeats=2)


def _rows() -> list[RatioRow | RateRow | SkippedRow]:
    return [
        RatioRow(id="r1", item=2, title="check | vs eigh", fast=Timing("fast", (0.001, 0.002, 0.003)),
                 slow=Timing("slow", (1.0, 2.0)), target=Target(">=", 100.0), notes="a note"),
        RatioRow(id="r2", item=1, title="floor", fast=Timing("floor", (1e-5,)), slow=Timing("scan", (1e-3,)),
                 target=Target("<=", 10.0)),
        RateRow(id="fuzz:x", item=4, title="fuzz x", unit="examples/s", values=(100.0, 300.0, 200.0)),
        SkippedRow(id="cuda:4096", item=5, title="CUDA d = 4096", reason="no CUDA device"),
        SkippedRow(id="rate:fuzz", item=4, title="fuzz", reason="no property_tests"),
    ]  # fmt: skip


def test_row_ratio_status_and_dict() -> None:
    r1, r2 = _rows()[:2]
    assert isinstance(r1, RatioRow) and isinstance(r2, RatioRow)
    assert r1.ratio.median == pytest.approx(1.5 / 0.002)
    assert r1.status.startswith("met")
    assert r2.status == "MISSED by 10×"
    d = r1.to_dict()
    assert d["target"]["met"] is True and d["ratio"]["min"] == pytest.approx(1.0 / 0.003)


def test_write_results_json_and_markdown(tmp_path: Path) -> None:
    header = machine_header(tmp_path)
    js, md = write_results(tmp_path / "out", header, _rows(), 12.5)
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["total_seconds"] == 12.5
    assert [r["kind"] for r in data["rows"]] == ["ratio", "ratio", "rate", "skipped", "skipped"]
    assert data["rows"][2]["stats"] == {"n": 3, "min": 100.0, "median": 200.0, "max": 300.0}
    assert data["header"]["date_utc"].endswith("UTC") and data["header"]["machine"]["cores_usable"] >= 1
    text = md.read_text(encoding="utf-8")
    lines = text.splitlines()
    table = [ln for ln in lines if ln.startswith("| 2 ")]
    assert len(table) == 1 and "750× [333–2,000]" in table[0] and "check \\| vs eigh" in table[0]
    assert any("skipped: no CUDA device" in ln for ln in lines)
    assert any(ln.startswith("| 4 | fuzz x | 200 | 100 | 300 | 3 | examples/s |") for ln in lines)
    assert any("skipped: no property_tests" in ln for ln in lines)
    assert "- **check | vs eigh**: a note" in text
    readme = (tmp_path / "out" / "README-performance.md").read_text(encoding="utf-8")
    assert readme.startswith("## Performance") and "750× [333–2,000]" in readme and "MISSED by 10×" in readme
    # every Markdown table row has as many cells as its header
    for block in text.split("\n\n"):
        rows = [ln for ln in block.splitlines() if ln.startswith("|")]
        if rows:
            widths = {ln.replace("\\|", "").count("|") for ln in rows}
            assert len(widths) == 1, block


def test_render_text_lists_every_row() -> None:
    text = render_text(machine_header(), _rows(), 1.0)
    for title in ("check | vs eigh", "floor", "fuzz x", "CUDA d = 4096"):
        assert title in text
    assert render_markdown(machine_header(), [], 0.0).startswith("Measured ")


def test_synthetic_writer_is_readable_by_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    spec = synthetic.GPT2Spec(name="tiny", d=16, n_layer=2, n_head=2, n_inner=32, vocab=50, n_positions=8)
    folder = synthetic.ensure_checkpoint(tmp_path, spec)
    tensors = load_file(str(folder / "model.safetensors"))
    assert set(tensors) == {n for n, _ in spec.tensors()}
    assert tensors["h.1.mlp.c_fc.weight"].shape == (16, 32)
    assert (folder / "model.safetensors").stat().st_size == 8 + struct.unpack(
        "<Q", (folder / "model.safetensors").read_bytes()[:8])[0] + spec.nbytes()
    gamma = tensors["ln_f.weight"]
    assert np.all((gamma >= 0.5) & (gamma <= 1.5)) and np.ptp(gamma) > 0  # not all ones: γ⁻¹ is not trivial
    grown = synthetic.grown_spec(spec, 4.0)
    base = synthetic.base_spec()  # at full size the MLP width rounds to 64 within 0.1 % of 4× the non-norm bytes
    assert synthetic.grown_spec(base).nbytes(norms=False) == pytest.approx(4 * base.nbytes(norms=False), rel=1e-3)
    assert base.nbytes() >= 1e9 and base.nbytes(norms=True) < 1e6
    assert grown.norm_names() == spec.norm_names()
    folder4 = synthetic.ensure_checkpoint(tmp_path, grown)
    t4 = load_file(str(folder4 / "model.safetensors"))
    for name in spec.norm_names():  # the variants share every norm tensor exactly
        np.testing.assert_array_equal(t4[name], tensors[name])
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert synthetic.ensure_checkpoint(tmp_path, spec) == folder  # reused, not rewritten
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime


def test_floor_reads_exactly_the_planned_bytes(tmp_path: Path) -> None:
    spec = synthetic.GPT2Spec(name="tiny", d=16, n_layer=2, n_head=2, n_inner=32, vocab=50, n_positions=8)
    folder = synthetic.ensure_checkpoint(tmp_path, spec)
    file, header_bytes, spans = bench_checkpoints.floor_plan(folder)
    assert len(spans) == len(spec.norm_names())  # name heuristic finds every ln_1/ln_2/ln_f tensor, nothing else
    assert bench_checkpoints.floor_read(file, header_bytes, spans) == header_bytes + spec.nbytes(norms=True)
    assert not bench_checkpoints.is_norm_tensor("h.0.mlp.c_fc.weight")
    assert bench_checkpoints.is_norm_tensor("blk.3.attn_norm.weight")


def test_offset_error_negative_control() -> None:
    """The exactness comparison can fail: the naive moment formula loses the covariance under a 1e8 offset."""
    y = bench_linalg.dyadic_data(512, 8)
    reference = np.cov(y, rowvar=False, bias=True)
    shifted = y + bench_linalg.OFFSET
    np.testing.assert_array_equal(shifted - bench_linalg.OFFSET, y)  # the offset is exact for dyadic data
    acc_err = bench_linalg.relative_error(bench_linalg.METHODS[bench_linalg.ACC_STREAM](shifted), reference)
    naive_err = bench_linalg.relative_error(bench_linalg.METHODS[bench_linalg.NAIVE](shifted), reference)
    # accumulator: centred per batch, so its error is a few roundings of O(1) numbers (≲ 1e3·u);
    # naive: cancels 1e16 against 1e16, an error of order u·1e16 ≈ 1 relative to a unit variance
    assert acc_err < 1e-12
    assert naive_err > 1e-3


def test_projection_and_eigensolve_rows_agree_small() -> None:
    rows = bench_linalg.projection_rows((16,), log=lambda _m: None)
    (row,) = rows
    assert isinstance(row, RatioRow)
    assert row.extra["abs_cos_bottom_eigvec"] == pytest.approx(1.0, abs=1e-9)
    assert row.extra["projection_std_over_rms"] < 1e-12


def test_cuda_rows_run_on_any_device_and_skip_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from benchmarks import bench_cuda

    rows = bench_cuda.accumulator_rows("cpu", (32,), log=lambda _m: None)  # the CUDA code path, tiny, on CPU
    kinds = sorted(type(r).__name__ for r in rows)
    assert kinds == ["RateRow", "RateRow", "RateRow", "RatioRow", "RatioRow"]
    fractions = [r for r in rows if isinstance(r, RateRow) and r.unit == "fraction of peak"]
    assert all(0 < v for r in fractions for v in r.values)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    skipped = bench_cuda.run()
    assert [type(r) for r in skipped] == [SkippedRow, SkippedRow]
    assert all("no CUDA device" in r.reason for r in skipped if isinstance(r, SkippedRow))


def test_fuzz_rows_count_examples_of_a_real_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the pytest subprocess and the observability plugin, on a tiny Hypothesis suite."""
    from benchmarks import bench_verification

    (row,) = bench_verification.fuzz_rows(tmp_path, log=lambda _m: None)
    assert isinstance(row, SkippedRow) and "property_tests" in row.reason
    suite = tmp_path / "property_tests"
    suite.mkdir()
    (suite / "test_x.py").write_text(
        "import pytest\nfrom hypothesis import given, settings, strategies as st\n\n"
        "@pytest.mark.parametrize('k', [1, 2])\n@settings(max_examples=7, derandomize=True, database=None)\n"
        "@given(st.integers())\ndef test_x(k: int, x: int) -> None:\n    pass\n\n"
        "def test_plain() -> None:\n    pass\n", encoding="utf-8")
    rows = bench_verification.fuzz_rows(tmp_path, log=lambda _m: None)
    (row,) = rows
    assert isinstance(row, RateRow) and row.id == "fuzz:test_x"
    assert row.extra["examples_passed"] == 14 and len(row.values) == 2  # 7 per parametrisation
    monkeypatch.setenv("DEADIR_BENCH_FUZZ_SUITE", "0")
    (row,) = bench_verification.fuzz_rows(tmp_path, log=lambda _m: None)
    assert isinstance(row, SkippedRow) and "switched off" in row.reason
    nodeid = "property_tests/test_layernorm.py::TestX::test_kernel[float32]"
    assert bench_verification._family(nodeid) == "test_layernorm"


def test_fuzz_pack_rows_count_examples() -> None:
    from benchmarks import bench_verification

    rows = bench_verification.pack_rows(max_examples=3, log=lambda _m: None)
    assert len(rows) == 6 and all(isinstance(r, RateRow) for r in rows)
    for r in rows:
        assert isinstance(r, RateRow) and r.unit == "examples/s"
        assert all(n >= 1 for n in r.extra["examples"]) and all(v > 0 for v in r.values)


def test_scan_peak_memory_is_flat_in_the_matmul_bytes(tmp_path: Path) -> None:
    """The memory row's measurement: a checkpoint with 30× more matmul bytes scans within the same peak."""
    from deadir import scan

    small = synthetic.GPT2Spec(name="mem-small", d=64, n_layer=2, n_head=2, n_inner=64, vocab=64, n_positions=8)
    large = synthetic.GPT2Spec(name="mem-large", d=64, n_layer=2, n_head=2, n_inner=2560, vocab=20000,
                               n_positions=8)
    assert large.nbytes(norms=False) > 30 * small.nbytes(norms=False)
    peaks = [bench_checkpoints.scan_peak_bytes(scan, synthetic.ensure_checkpoint(tmp_path, s)) for s in (small, large)]
    # same norm tensors and tensor count: the headers differ only in their offsets' digits
    assert peaks[1] < 1.1 * peaks[0], peaks
    # control: the peak would see the matmul bytes if the scan read them (here: reading one 20,000×64 matrix)
    from safetensors.numpy import load_file

    def scan_and_read_all(folder: Path) -> Any:
        return scan(folder), load_file(str(folder / "model.safetensors"))

    eager = bench_checkpoints.scan_peak_bytes(scan_and_read_all, synthetic.ensure_checkpoint(tmp_path, large))
    assert eager > 10 * peaks[1]
