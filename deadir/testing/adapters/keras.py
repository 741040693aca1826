"""The Keras 3 adapter: a Keras layer on whichever backend ``KERAS_BACKEND`` selects (extra ``deadir[keras]``).

The layer's dtype policy is set to the pack's dtype before it is built (a layer left at its
float32 default would be judged on float32 arithmetic it never declared), then built on
(None, d). Parameters: Keras's names by default (``gamma``, ``beta``, ``epsilon``; a
RMSNormalization's scale is ``scale``: pass ``--gamma-attr scale``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import InputShapeError
from deadir.precision import default_compute_dtype, dtype_name
from deadir.testing.adapters import DriveOptions, Layout, parameter_names
from deadir.testing.adapters.numpy import numpy_dtype
from deadir.testing.assertions import PreparedNorm

__all__ = ["bind_keras"]


def bind_keras(norm: Any, d: int, *, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
               dtype: str, options: DriveOptions) -> PreparedNorm:
    """Bind a Keras 3 layer (see :func:`deadir.testing.adapters.bind_norm`).

    Raises:
        InputShapeError: a named weight missing or of the wrong size.
    """
    import keras

    if keras.backend.backend() == "jax":  # float64 arrays need x64 in JAX
        import jax

        config: Any = jax.config
        config.update("jax_enable_x64", True)
    name = dtype_name(dtype)
    layout = Layout.of(options)
    if not norm.built:
        norm.dtype_policy = keras.DTypePolicy(name)
        norm.build(layout.input_shape(1, d))
    compute = dtype_name(options.compute_dtype) if options.compute_dtype else default_compute_dtype(name)
    offset = float(options.weight_offset or 0.0)
    g_attr, b_attr, e_attr, source = parameter_names(norm, options, ("gamma", "beta", "epsilon"))
    gamma, beta_now = np.ones(d), np.zeros(d)
    notes: list[str] = []
    for attr, values, is_scale in ((g_attr, weight, True), (b_attr, beta, False)):
        var = getattr(norm, attr, None) if attr else None
        if var is None:
            if source != "defaults" and attr:
                raise InputShapeError(f"{type(norm).__name__}.{attr}: no such weight")
            continue
        size = int(np.prod(var.shape))
        if size != d:
            raise InputShapeError(f"{type(norm).__name__}.{attr}: has {size} entries, expected d={d}")
        if values is not None:
            var.assign(np.asarray(values, dtype=numpy_dtype(str(var.dtype))).reshape(var.shape)
                       if str(var.dtype) != "bfloat16" else keras.ops.cast(values.reshape(var.shape), "bfloat16"))
        stored = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(var.value, "float64"))).reshape(-1)
        if is_scale:
            gamma = stored + offset
        else:
            beta_now = stored
    module_eps: float | None = None
    if e_attr and isinstance(getattr(norm, e_attr, None), float):
        if eps is not None:
            setattr(norm, e_attr, float(eps))
        module_eps = float(getattr(norm, e_attr))
    if str(norm.compute_dtype) != name:
        notes.append(f"{type(norm).__name__} computes in {norm.compute_dtype} under its dtype policy")

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        n = x.shape[0]
        out = norm(keras.ops.cast(keras.ops.convert_to_tensor(layout.to_input(x)), name))
        kind = str(keras.backend.standardize_dtype(out.dtype))
        y = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(out, "float64")))
        if y.shape != layout.input_shape(n, d):
            return y.reshape(1, -1), kind
        return np.asarray(layout.to_rows(y, n, d)), kind

    return PreparedNorm(run, d, name, compute, gamma, beta_now, module_eps, offset, type(norm).__name__,
                        options.groups or 1, options.timeout, options.determinism, tuple(notes))
