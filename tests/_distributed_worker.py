"""One rank of the two-process merge test (tests/test_covariance_distributed.py).

Run as ``python _distributed_worker.py MODE RANK WORLD INIT_FILE OUT_DIR``. Each rank streams
its share of a fixed data set into a CovarianceAccumulator, merges across ranks over gloo and
writes what it got to OUT_DIR/rank{RANK}.npz (or the error it raised to rank{RANK}.err).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from deadir import CovarianceAccumulator, DeadirError

D = 6
SPLIT = 317  # rank 0 takes rows [:SPLIT], rank 1 the rest: unequal shares on purpose


def shared_data() -> np.ndarray:
    """The data set both ranks and the single-process reference read: correlated, offset 1e8."""
    rng = np.random.default_rng(1234)
    return 1e8 + rng.standard_normal((1000, D)) @ rng.standard_normal((D, D))


def main() -> None:
    mode, rank, world, init_file, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x = shared_data()
        mine = x[:SPLIT] if rank == 0 else x[SPLIT:]
        d = D
        if mode == "empty" and rank == 1:
            mine = mine[:0]
        if mode == "mismatch" and rank == 1:
            d, mine = D - 1, mine[:, : D - 1]
        acc = CovarianceAccumulator(d)
        for i, chunk in enumerate(np.array_split(mine, 5)):
            # rank 1 feeds torch tensors: the state's backend must not matter to the merge
            acc.update(torch.from_numpy(chunk) if rank == 1 and i % 2 else chunk)
        try:
            merged = acc.merged_across_ranks()
        except DeadirError as exc:
            (out / f"rank{rank}.err").write_text(f"{type(exc).__name__}: {exc}")
            return
        assert acc.n == len(mine), "the local accumulator must be left unchanged"
        np.savez(out / f"rank{rank}.npz", cov=merged.cov(), mean=merged.mean, n=merged.n)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
