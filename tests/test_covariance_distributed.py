"""CovarianceAccumulator.merged_across_ranks: two real processes over torch.distributed (gloo, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deadir import CovarianceAccumulator, DeadirError

sys.path.insert(0, str(Path(__file__).parent))
from _distributed_worker import SPLIT, shared_data

WORKER = Path(__file__).with_name("_distributed_worker.py")


def _run_two_ranks(mode: str, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    init = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(WORKER), mode, str(r), "2", str(init), str(out)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    for r, p in enumerate(procs):
        log, _ = p.communicate(timeout=180)
        assert p.returncode == 0, f"rank {r} failed:\n{log}"
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_split_over_two_ranks_equals_single_process(tmp_path: Path) -> None:
    out = _run_two_ranks("split", tmp_path)
    x = shared_data()
    single = CovarianceAccumulator(x.shape[1])
    for chunk in np.array_split(x[:SPLIT], 5) + np.array_split(x[SPLIT:], 5):
        single.update(chunk)
    ranks = [np.load(out / f"rank{r}.npz") for r in range(2)]
    # every rank merges the same states in the same order: bit-identical results
    np.testing.assert_array_equal(ranks[0]["cov"], ranks[1]["cov"])
    for res in ranks:
        assert int(res["n"]) == len(x)
        # same float64 operations as one process, up to the order of the pairwise merges
        assert _rel(res["cov"], single.cov()) < 1e-12
        assert _rel(res["cov"], np.cov(x, rowvar=False, ddof=0)) < 1e-12
        # both means carry O(log n) rounding of float64 sums (u = 1.1e-16, n = 1000): 1e-14 ≈ 90 u
        np.testing.assert_allclose(res["mean"], x.mean(0), rtol=1e-14)


def test_rank_with_no_samples_contributes_nothing(tmp_path: Path) -> None:
    out = _run_two_ranks("empty", tmp_path)
    x = shared_data()[:SPLIT]
    for r in range(2):
        res = np.load(out / f"rank{r}.npz")
        assert int(res["n"]) == SPLIT
        assert _rel(res["cov"], np.cov(x, rowvar=False, ddof=0)) < 1e-12


def test_ranks_with_different_d_are_rejected_on_every_rank(tmp_path: Path) -> None:
    out = _run_two_ranks("mismatch", tmp_path)
    for r in range(2):
        msg = (out / f"rank{r}.err").read_text()
        assert msg.startswith("InputShapeError") and "[6, 5]" in msg


def test_without_process_group_is_a_clear_error() -> None:
    with pytest.raises(DeadirError, match="not initialised"):
        CovarianceAccumulator(3).update(np.ones((2, 3))).merged_across_ranks()
