"""``python -m benchmarks [--only 1,2,3,4,5] [--out build/bench] [--quick]``.

BLAS/OpenMP thread counts must be fixed before numpy or torch is imported, so they are set
here from ``DEADIR_BENCH_THREADS`` (default 1). Why 1: on a shared machine (2 cores, load
often > 4) a multi-threaded OpenBLAS spins waiting for its own threads and a 1024×1024
eigensolve ran 6× slower with 2 threads than with 1; pinning every library to the same
thread count keeps both sides of each ratio comparable. Set DEADIR_BENCH_THREADS=0 to keep
the libraries' defaults.
"""

from __future__ import annotations

import os
import sys

_threads = os.environ.get("DEADIR_BENCH_THREADS", "1")
if _threads != "0":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

from benchmarks.run import main  # noqa: E402  (after the thread settings, on purpose)

if __name__ == "__main__":
    sys.exit(main())
