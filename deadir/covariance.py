"""Streaming centred covariance in float64, exact under large common offsets.

Each batch is centred on its own mean before its outer products are formed, and
batches (or whole accumulators) are combined with the pairwise update of Chan,
Golub and LeVeque (1979). Means are kept relative to a fixed shift (the first
batch's mean): the pairwise update is first-order sensitive to rounding of the
difference of batch means, and at an offset of 1e8 an absolute mean carries an
error of ~1e-8 that a relative mean does not. The naive E[yyᵀ] − E[y]E[y]ᵀ formula is never used: with
a common offset of 1e8 it cancels every significant digit of a unit variance.

Torch batches stay on their device: the state lives there in float64, so a GPU
forward pass is measured without copying activations to the host.

Speed (issue 16 item 4): a batch costs one pass for its column means c, one pass forming
r = rows − c, one pass for m = mean(r) and one symmetric rank-N update S = rᵀr (numpy's
``r.T @ r`` on one buffer calls BLAS syrk: half the flops of a general product, and an exactly
symmetric result). M2 of the batch is S − N·m mᵀ: m is the rounding left by the first
centring (|m| ≲ u·|c|), so the correction never cancels; it is skipped when it lies below syrk's
own rounding bound (N·max mᵢ² ≤ u·min Sᵢᵢ), which saves two d × d passes and a temporary. Why exact under a 1e8 offset:
rows − fl(c) is exact (Sterbenz: both within a factor 2), so m is accurate to u·σ, and the
batch mean relative to the shift is (fl(c) − shift) + m with fl(c) − shift exact too.
Every term of M2 (syrk's output, n·m mᵀ, the pairwise δδᵀ) is exactly symmetric, so the numpy
state needs no symmetrisation; a torch state (general matmul) is symmetrised in ``cov()``.

Overflow (issue 13): a batch whose scatter overflows float64 (1e200-scale rows) raises
:class:`AccumulatorOverflowError` naming the batch, before the state changes; no numpy
warning escapes. The check is on the diagonal of S: |Sᵢⱼ| ≤ (Sᵢᵢ + Sⱼⱼ)/2 for every partial
sum, so a diagonal at most ``_SCATTER_LIMIT`` (a quarter of float64's maximum) leaves every entry finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deadir.arrays import FloatArray, as_float64, is_torch_tensor
from deadir.errors import DeadirError, InputShapeError
from deadir.precision import UNIT_ROUNDOFF

# Largest diagonal entry of a scatter matrix (and of the state) accepted: a quarter of float64's
# maximum, so that every off-diagonal partial sum (≤ the mean of two diagonal entries) and the
# pairwise update's sum of three such terms stay finite.
_SCATTER_LIMIT = float(np.finfo(np.float64).max) / 4.0


class AccumulatorOverflowError(DeadirError, OverflowError):
    """A batch's values are so large that its scatter (sum of outer products) overflows float64.

    ``batch`` is the 1-based number of the ``update`` call that failed; the state is unchanged.
    """

    def __init__(self, message: str, *, batch: int) -> None:
        super().__init__(message)
        self.batch = batch


class CovarianceAccumulator:
    """Centred covariance of d-dimensional samples, accumulated batch by batch in float64.

    ``update(batch)`` takes arrays of shape (n, d) or (..., d) (numpy, sequences, or
    torch on any device); ``merge(other)`` folds in another accumulator exactly, so
    processes can share one measurement. ``cov()`` is the population covariance
    (ddof = 0, i.e. numpy.cov(..., bias=True)).
    """

    def __init__(self, d: int) -> None:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
            raise InputShapeError(f"d: must be a positive integer, got {d!r}")
        self.d = int(d)
        self._n = 0
        self._shift: Any = None  # means below are relative to this point
        self._mean: Any = np.zeros(self.d)
        self._m2: Any = np.zeros((self.d, self.d))
        self._torch_device: Any = None  # set when the state lives in torch
        self._batches = 0  # update calls so far, to name a failing batch

    @property
    def n(self) -> int:
        """Number of samples accumulated."""
        return self._n

    @property
    def mean(self) -> FloatArray:
        """Mean of the samples (float64 numpy, shape (d,))."""
        self._require_samples("mean")
        return _to_numpy(self._shift + self._mean)

    def cov(self) -> FloatArray:
        """Population covariance (ddof = 0) as float64 numpy, shape (d, d), exactly symmetric."""
        self._require_samples("cov")
        c = _to_numpy(self._m2) / self._n
        # numpy state: exactly symmetric by construction (module docstring); torch's matmul is not syrk
        return _symmetrised(c) if self._torch else c

    def update(self, batch: Any) -> CovarianceAccumulator:
        """Add the rows of ``batch`` (shape (..., d)); returns self.

        Raises:
            InputShapeError: wrong last axis, or NaN/infinite entries.
            AccumulatorOverflowError: the batch's sums or scatter overflow float64 (the batch is named;
                the state is unchanged).
        """
        self._batches += 1
        if is_torch_tensor(batch):
            self._update_torch(batch)
        else:
            arr = as_float64(batch, name="batch")
            if arr.ndim == 0:
                raise InputShapeError("batch: expected shape (..., d), got a scalar")
            if arr.shape[-1] != self.d:
                raise InputShapeError(f"batch: expected last axis of size {self.d}, got shape {tuple(arr.shape)}")
            rows = arr.reshape(-1, self.d)
            if self._torch:  # a device state stays on its device
                import torch

                self._update_torch(torch.from_numpy(rows))
            elif rows.shape[0]:
                self._update_numpy(rows)
        return self

    def merge(self, other: CovarianceAccumulator) -> CovarianceAccumulator:
        """Fold ``other``'s samples into this accumulator exactly; returns self.

        Raises:
            InputShapeError: ``other`` is not a CovarianceAccumulator of the same d.
        """
        if not isinstance(other, CovarianceAccumulator):
            raise InputShapeError(f"other: expected a CovarianceAccumulator, got {type(other).__name__}")
        if other.d != self.d:
            raise InputShapeError(f"other: accumulates d={other.d}, this one d={self.d}")
        if other._n:
            shift = self._shift_for(other._shift)
            self._combine(other._n, (self._same_backend(other._shift) - shift) + self._same_backend(other._mean),
                          other._m2)
        return self

    def merged_across_ranks(self, *, group: Any = None) -> CovarianceAccumulator:
        """Every rank's samples merged into one accumulator, the same on every rank.

        A collective over ``torch.distributed`` (gloo on CPU, nccl on CUDA): each rank sends
        its state (n, shift, mean, M2; d² + 2d + 1 float64 values, not its samples) and all
        ranks merge them in rank order, so the result does not depend on which rank asks.
        This accumulator is left unchanged; the result lives on the host.

        Raises:
            DeadirError: torch.distributed is not initialised.
            InputShapeError: the ranks accumulate different d (each rank's d is named).
        """
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise DeadirError("merged_across_ranks: torch.distributed is not initialised "
                              "(call torch.distributed.init_process_group first)")
        world = dist.get_world_size(group)
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" \
            else torch.device("cpu")
        dims = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(world)]
        dist.all_gather(dims, torch.tensor([float(self.d)], dtype=torch.float64, device=device), group=group)
        if any(int(x.item()) != self.d for x in dims):
            raise InputShapeError(f"merged_across_ranks: ranks accumulate different d: {[int(x.item()) for x in dims]}")
        d = self.d
        if self._n:
            parts = [_to_numpy(self._shift), _to_numpy(self._mean), _to_numpy(self._m2).ravel()]
        else:
            parts = [np.zeros(d), np.zeros(d), np.zeros(d * d)]
        state = torch.from_numpy(np.concatenate([[float(self._n)], *parts])).to(device)
        states = [torch.empty_like(state) for _ in range(world)]
        dist.all_gather(states, state, group=group)
        merged = CovarianceAccumulator(d)
        for st in states:
            flat = st.cpu().numpy()
            n = int(flat[0])
            if n == 0:
                continue
            part = CovarianceAccumulator(d)
            part._n, part._shift = n, flat[1 : 1 + d].copy()
            part._mean, part._m2 = flat[1 + d : 1 + 2 * d].copy(), flat[1 + 2 * d :].reshape(d, d).copy()
            merged.merge(part)
        return merged

    def _update_torch(self, batch: Any) -> None:
        import torch

        t = batch.detach()
        if t.is_complex() or t.dtype == torch.bool or t.ndim == 0 or t.shape[-1] != self.d:
            raise InputShapeError(
                f"batch: expected a real tensor of shape (..., {self.d}), got {tuple(t.shape)} {t.dtype}"
            )
        rows = t.reshape(-1, self.d).to(torch.float64)
        if rows.shape[0] == 0:
            return
        if self._n and not self._torch:  # a host state stays on the host
            self._update_numpy(rows.cpu().numpy())
            return
        if self._torch:
            # A model split over devices (accelerate device_map) hands one site's rows from
            # wherever that layer lives; the state stays on the device that fixed it.
            rows = rows.to(self._torch_device)
        with np.errstate(over="ignore", invalid="ignore"):
            col_mean = rows.mean(dim=0)
        if not bool(torch.isfinite(col_mean).all()):
            if not bool(torch.isfinite(rows).all()):
                raise InputShapeError("batch: contains NaN or infinite entries")
            raise self._overflow("its column sums overflow float64")
        r = rows - col_mean
        m = r.mean(dim=0)
        s = r.T @ r
        self._check_scatter(s.diagonal())
        s -= rows.shape[0] * torch.outer(m, m)
        self._combine(int(rows.shape[0]), (col_mean - self._shift_for(col_mean)) + m, s, owned=True)

    def _update_numpy(self, rows: FloatArray) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            col_mean = rows.mean(axis=0)
        # A NaN or inf anywhere makes its column mean non-finite: an O(d) check instead of O(n·d).
        if not np.all(np.isfinite(col_mean)):
            if not np.all(np.isfinite(rows)):
                bad = np.argwhere(~np.isfinite(rows))[:5].tolist()
                raise InputShapeError(f"batch: contains NaN or infinite entries (first at (row, column) {bad})")
            raise self._overflow("its column sums overflow float64")
        shift = self._shift_for(col_mean)
        with np.errstate(over="ignore", invalid="ignore"):
            r = rows - col_mean  # exact where rows and c agree to a factor 2 (Sterbenz)
            m = r.mean(axis=0)
            s = r.T @ r  # one buffer, transposed: numpy calls syrk (exactly symmetric)
        diag = s.diagonal()
        self._check_scatter(diag)
        n = rows.shape[0]
        # n·m mᵀ is below syrk's own rounding bound (γ_n·√(Sᵢᵢ Sⱼⱼ) ≥ n·u·min Sᵢᵢ per entry) whenever
        # n·max mᵢ² ≤ u·min Sᵢᵢ — the usual case (|m| ≲ u·|c|); then the d × d update is skipped
        m_sq = float(np.max(m * m)) if m.size else 0.0
        if m_sq and not n * m_sq <= UNIT_ROUNDOFF["float64"] * float(diag.min()):
            s -= n * np.outer(m, m)
        self._combine(n, (col_mean - shift) + m, s, owned=True)

    def _check_scatter(self, diag: Any) -> None:
        """Raise (state unchanged) unless every diagonal entry of a scatter is finite and ≤ _SCATTER_LIMIT."""
        top = float(diag.max()) if diag.shape[0] else 0.0
        if not top <= _SCATTER_LIMIT:  # also catches NaN
            raise self._overflow(f"its scatter overflows float64 (largest sum of squares {top:.3g})")

    def _overflow(self, why: str) -> AccumulatorOverflowError:
        return AccumulatorOverflowError(
            f"batch {self._batches}: values too large to accumulate in float64: {why}; rescale the inputs",
            batch=self._batches,
        )

    def _combine(self, n_b: int, mean_b: Any, m2_b: Any, *, owned: bool = False) -> None:
        """Fold in n_b samples with mean mean_b (relative to the shift) and scatter m2_b.

        ``owned``: m2_b is a fresh array nobody else holds, so the state may take it without a copy.
        """
        mean_b, m2_b = self._same_backend(mean_b), self._same_backend(m2_b)
        if self._n == 0:
            self._n, self._mean = n_b, mean_b.clone() if self._torch else mean_b.copy()
            self._m2 = m2_b if owned else m2_b + 0
            return
        n_a = self._n
        n = n_a + n_b
        delta = mean_b - self._mean
        with np.errstate(over="ignore", invalid="ignore"):
            coef = n_a * n_b / n
            top = float((self._m2.diagonal() + m2_b.diagonal() + delta * delta * coef).max())
            if not top <= _SCATTER_LIMIT:
                raise self._overflow(f"the merged scatter overflows float64 (largest sum of squares {top:.3g})")
            # in place, one d × d temporary (the state owns its M2: see ``owned`` above); δᵢδⱼ·c is
            # formed as (δᵢδⱼ)·c so that it stays exactly symmetric
            outer = delta[:, None] * delta[None, :]
            outer *= coef
            self._m2 += m2_b
            self._m2 += outer
        self._mean = self._mean + delta * (n_b / n)
        self._n = n

    def _shift_for(self, candidate: Any) -> Any:
        """The shift of the state, fixed to ``candidate`` by the first samples (in the state's backend)."""
        if self._shift is None:
            self._shift = self._same_backend(candidate)
            self._shift = self._shift.clone() if self._torch else self._shift.copy()
        return self._same_backend(self._shift)

    @property
    def _torch(self) -> bool:
        return self._torch_device is not None

    def _same_backend(self, x: Any) -> Any:
        """Move ``x`` to the backend of the state; the first torch input fixes a torch state."""
        if is_torch_tensor(x):
            import torch

            if not self._torch:
                if self._n:  # numpy state meets torch data: keep numpy (host) state
                    return x.detach().to("cpu", torch.float64).numpy()
                self._torch_device = x.device
                self._mean = torch.as_tensor(self._mean, dtype=torch.float64, device=x.device)
                self._m2 = torch.as_tensor(self._m2, dtype=torch.float64, device=x.device)
                return x
            return x.to(self._torch_device, torch.float64)
        if self._torch:
            import torch

            return torch.as_tensor(np.asarray(x), dtype=torch.float64, device=self._torch_device)
        return np.asarray(x, dtype=np.float64)

    def _require_samples(self, what: str) -> None:
        if self._n == 0:
            raise InputShapeError(f"CovarianceAccumulator.{what}: no samples accumulated yet")

    def __repr__(self) -> str:
        where = f", device={self._torch_device}" if self._torch else ""
        return f"CovarianceAccumulator(d={self.d}, n={self._n}{where})"


def _symmetrised(c: FloatArray, block: int = 256) -> FloatArray:
    """(c + cᵀ)/2 in place, block by block (a whole-matrix transpose read is cache-hostile at large d)."""
    d = c.shape[0]
    for i in range(0, d, block):
        for j in range(i, d, block):
            upper = c[i : i + block, j : j + block]
            lower = c[j : j + block, i : i + block]
            mean = (upper + lower.T) / 2.0
            upper[...] = mean
            lower[...] = mean.T
    return c


def _to_numpy(x: Any) -> FloatArray:
    if is_torch_tensor(x):
        return np.asarray(x.detach().cpu().numpy(), dtype=np.float64)
    return np.asarray(x, dtype=np.float64)
