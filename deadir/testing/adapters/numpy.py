"""The NumPy adapter: a :class:`~deadir.NormSpec` (float64 reference forward) or a callable on numpy arrays."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from deadir.arrays import FloatArray, as_vector
from deadir.errors import InputShapeError
from deadir.norms import NormSpec
from deadir.precision import default_compute_dtype, dtype_name
from deadir.testing.adapters import DriveOptions, Layout, parameter_names
from deadir.testing.assertions import PreparedNorm
from deadir.testing.harness import FactoryError

__all__ = ["bind_numpy", "numpy_dtype"]


def numpy_dtype(name: str) -> Any:
    """The numpy dtype of a format name; bfloat16 through ml_dtypes (installed with jax or onnx).

    Raises:
        InputShapeError: bfloat16 without ml_dtypes.
    """
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as exc:
            raise InputShapeError("dtype: bfloat16 numpy arrays need the ml_dtypes package") from exc
        return ml_dtypes.bfloat16
    return np.dtype(name)


def bind_numpy(norm: Any, d: int, *, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
               dtype: str, options: DriveOptions) -> PreparedNorm:
    """Bind a NormSpec (run in float64 whatever ``dtype``) or a numpy callable run in ``dtype``.

    A callable's parameters are attributes named by ``gamma_attr``/``beta_attr``/``eps_attr``
    (or its ``deadir_parameters``): numpy arrays of length d the adapter overwrites.

    Raises:
        InputShapeError: a named attribute missing or of the wrong length.
        FactoryError: not a NormSpec nor a callable.
    """
    if isinstance(norm, NormSpec):
        return _bind_spec(norm, d, weight, beta, eps, options)
    if not callable(norm):
        raise FactoryError(f"factory: returned {type(norm).__name__}, expected a numpy callable or a NormSpec")
    name = dtype_name(dtype)
    npdt = numpy_dtype(name)
    compute = dtype_name(options.compute_dtype) if options.compute_dtype else default_compute_dtype(name)
    offset = float(options.weight_offset or 0.0)
    g_attr, b_attr, e_attr, _ = parameter_names(norm, options, (None, None, None))
    notes: list[str] = []
    gamma = np.ones(d)
    beta_now = np.zeros(d)
    for attr, values, is_scale in ((g_attr, weight, True), (b_attr, beta, False)):
        if attr is None:
            continue
        current = getattr(norm, attr, None)
        if current is None or np.size(current) not in (d, 1):
            raise InputShapeError(f"{type(norm).__name__}.{attr}: expected an array of length {d}, got {current!r:.60}")
        if values is not None:
            setattr(norm, attr, np.asarray(values if np.size(current) == d else values[:1], dtype=npdt))
        stored = as_vector(np.asarray(getattr(norm, attr), dtype=np.float64).reshape(-1), name=attr)
        full = np.full(d, stored[0]) if stored.size == 1 else stored
        if is_scale:
            gamma = full + offset
        else:
            beta_now = full
    if g_attr is None:
        notes.append("a numpy callable without a named scale: tested at gamma = 1, beta = 0")
    module_eps = None
    if e_attr is not None:
        if eps is not None:
            setattr(norm, e_attr, float(eps))
        module_eps = float(getattr(norm, e_attr))
    layout = Layout.of(options)
    fn: Callable[[Any], Any] = norm

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        n = x.shape[0]
        # an inf/NaN the norm computes is its output, judged by the finite-output check: NumPy's floating-point
        # warnings (which a warnings filter may turn into exceptions) must not make it a raising norm (ERROR)
        with np.errstate(all="ignore"):
            out = np.asarray(fn(np.ascontiguousarray(layout.to_input(x.astype(npdt)))))
        kind = "bfloat16" if name == "bfloat16" and out.dtype == npdt else out.dtype.name
        y = out.astype(np.float64)
        if y.shape != layout.input_shape(n, d):
            return y.reshape(1, -1), kind
        return np.asarray(layout.to_rows(y, n, d)), kind

    return PreparedNorm(run, d, name, compute, gamma, beta_now, module_eps, offset,
                        getattr(norm, "__qualname__", type(norm).__name__), options.groups or 1, options.timeout,
                        options.determinism, tuple(notes))


def _bind_spec(spec: NormSpec, d: int, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
               options: DriveOptions) -> PreparedNorm:
    if spec.size != d:
        raise InputShapeError(f"norm: the NormSpec has d={spec.size}, expected {d}")
    offset = spec.weight_offset if options.weight_offset is None else float(options.weight_offset)
    spec = dataclasses.replace(spec, weight=spec.weight if weight is None else weight,
                               bias=spec.bias if beta is None else beta,
                               eps=spec.eps if eps is None else float(eps), weight_offset=offset)

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        return spec.apply(x), "float64"

    return PreparedNorm(run, d, "float64", "float64", spec.gamma, spec.beta, spec.eps, offset,
                        spec.source or f"NormSpec({spec.kind})", spec.groups if spec.kind == "groupnorm" else 1,
                        options.timeout, options.determinism)
