"""The JAX adapter: flax.nnx modules, flax.linen modules and callables on jax arrays (extra ``deadir[jax]``).

Parameters: flax's names by default (``scale``, ``bias``, ``epsilon``), or the usual options
and protocol. nnx: the ``nnx.Param`` values are replaced. linen: the module is initialised on
one row and applied with the drawn ``{"params": {"scale": γ, "bias": β}}``; ε is set by
``module.clone(epsilon=ε)``. float64 needs ``jax_enable_x64``, which this adapter turns on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import InputShapeError
from deadir.precision import default_compute_dtype, dtype_name
from deadir.testing.adapters import DriveOptions, Layout, parameter_names
from deadir.testing.assertions import PreparedNorm

__all__ = ["bind_jax"]


def _jnp_dtype(name: str) -> Any:
    import jax.numpy as jnp

    return getattr(jnp, name)


def bind_jax(norm: Any, d: int, *, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
             dtype: str, options: DriveOptions) -> PreparedNorm:
    """Bind a flax (nnx or linen) module or a jax callable (see :func:`deadir.testing.adapters.bind_norm`).

    Raises:
        InputShapeError: a named parameter missing or of the wrong size.
    """
    import jax

    config: Any = jax.config
    config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from flax import linen, nnx

    name = dtype_name(dtype)
    jdt = _jnp_dtype(name)
    compute = dtype_name(options.compute_dtype) if options.compute_dtype else default_compute_dtype(name)
    offset = float(options.weight_offset or 0.0)
    g_attr, b_attr, e_attr, source = parameter_names(norm, options, ("scale", "bias", "epsilon"))
    layout = Layout.of(options)
    notes: list[str] = []
    gamma, beta_now = np.ones(d), np.zeros(d)
    module_eps: float | None = None
    call: Callable[[Any], Any]
    if isinstance(norm, nnx.Module):
        for attr, values, is_scale in ((g_attr, weight, True), (b_attr, beta, False)):
            param = getattr(norm, attr, None) if attr else None
            if param is None:
                if source != "defaults" and attr:
                    raise InputShapeError(f"{type(norm).__name__}.{attr}: no such parameter")
                continue
            value = param.get_value()  # `.value` is deprecated in flax ≥ 0.12
            size = int(np.size(value))
            if size not in (d, 1):
                raise InputShapeError(f"{type(norm).__name__}.{attr}: has {size} entries, expected d={d}")
            if values is not None:
                param.set_value(jnp.asarray(values if size == d else values[:1], dtype=jdt).reshape(value.shape))
            stored = np.asarray(param.get_value(), dtype=np.float64).reshape(-1)
            full = np.full(d, stored[0]) if size == 1 else stored
            if is_scale:
                gamma = full + offset
            else:
                beta_now = full
        if e_attr and isinstance(getattr(norm, e_attr, None), float):
            if eps is not None:
                setattr(norm, e_attr, float(eps))
            module_eps = float(getattr(norm, e_attr))
        call = norm
    elif isinstance(norm, linen.Module):
        module = norm
        if e_attr and isinstance(getattr(module, e_attr, None), float):
            if eps is not None:
                overrides: dict[str, Any] = {e_attr: float(eps)}
                module = module.clone(**overrides)
            module_eps = float(getattr(module, e_attr))
        params = dict(module.init(jax.random.PRNGKey(0), jnp.zeros(layout.input_shape(1, d), dtype=jdt))
                      .get("params", {}))
        for attr, values, is_scale in ((g_attr, weight, True), (b_attr, beta, False)):
            if not attr or attr not in params:
                if source != "defaults" and attr:
                    raise InputShapeError(f"{type(norm).__name__}: no parameter {attr!r} (has {sorted(params)})")
                continue
            shape = params[attr].shape
            if values is not None:
                params[attr] = jnp.asarray(values, dtype=jdt).reshape(shape)
            stored = np.asarray(params[attr], dtype=np.float64).reshape(-1)
            if is_scale:
                gamma = stored + offset
            else:
                beta_now = stored
        frozen = {"params": params}

        def call(x: Any) -> Any:
            return module.apply(frozen, x)
    elif callable(norm):
        notes.append("a jax callable without parameters: tested at gamma = 1, beta = 0")
        call = norm
    else:
        raise InputShapeError(f"factory: returned {type(norm).__name__}, expected a flax module or a jax callable")

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        n = x.shape[0]
        out = call(jnp.asarray(layout.to_input(x), dtype=jdt))
        kind = str(out.dtype)
        y = np.asarray(out.astype(jnp.float64))
        if y.shape != layout.input_shape(n, d):
            return y.reshape(1, -1), kind
        return np.asarray(layout.to_rows(y, n, d)), kind

    return PreparedNorm(run, d, name, compute, gamma, beta_now, module_eps, offset, type(norm).__name__,
                        options.groups or 1, options.timeout, options.determinism, tuple(notes))
