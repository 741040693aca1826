"""The torch adapter: torch.nn.Module (optionally torch.compile'd) or a callable on torch tensors."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from deadir.arrays import FloatArray, as_vector, is_torch_tensor
from deadir.errors import DeadirError, InputShapeError
from deadir.norms import NormSpec
from deadir.precision import default_compute_dtype, dtype_name
from deadir.testing.adapters import DriveOptions, Layout, parameter_names
from deadir.testing.assertions import PreparedNorm
from deadir.testing.harness import FactoryError

__all__ = ["CompileCounter", "bind_torch", "compiled"]

_EPS_NAMES = ("eps", "variance_epsilon")


@dataclasses.dataclass
class CompileCounter:
    """Calls of a torch.compile'd norm: ``calls`` made by the pack, ``compiled_calls`` that ran inductor's code."""

    calls: int = 0
    compiled_calls: int = 0
    graphs: int = 0


def compiled(module: Any) -> tuple[Callable[..., Any], CompileCounter]:
    """``torch.compile(module, dynamic=True)`` once per module, with a backend that counts compiled executions.

    The backend is inductor's ``compile_fx`` wrapped so each execution of a compiled graph
    increments ``compiled_calls``: a call that dynamo ran eagerly (recompile limit, graph
    break to nothing) does not, so the pack can tell whether it tested compiled code.
    """
    cached = getattr(module, "_deadir_compiled", None)
    if cached is not None:
        result: tuple[Callable[..., Any], CompileCounter] = cached
        return result
    import torch
    from torch._inductor.compile_fx import compile_fx

    counter = CompileCounter()

    def backend(gm: Any, example_inputs: Any) -> Any:
        counter.graphs += 1
        fn: Any = compile_fx(gm, example_inputs)

        def run(*args: Any) -> Any:
            counter.compiled_calls += 1
            return fn(*args)

        return run

    fn = torch.compile(module, dynamic=True, backend=backend)
    object.__setattr__(module, "_deadir_compiled", (fn, counter))
    return fn, counter


def _get(obj: Any, dotted: str) -> Any:
    try:
        return functools.reduce(getattr, dotted.split("."), obj)
    except AttributeError:
        return None


def _set(obj: Any, dotted: str, value: Any) -> None:
    head, _, last = dotted.rpartition(".")
    setattr(_get(obj, head) if head else obj, last, value)


def bind_torch(norm: Any, d: int, *, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
               dtype: str, options: DriveOptions) -> PreparedNorm:
    """Bind a torch module or callable (see :func:`deadir.testing.adapters.bind_norm`).

    Raises:
        InputShapeError: a named parameter is missing or of the wrong size; a module whose
            parameters include no scale the adapter can place (pass gamma_attr).
        FactoryError: not a module nor a callable.
    """
    import torch

    if isinstance(norm, NormSpec):
        from deadir.testing.adapters.numpy import bind_numpy

        return bind_numpy(norm, d, weight=weight, beta=beta, eps=eps, dtype=dtype, options=options)
    name = dtype_name(dtype)
    tdtype = getattr(torch, name)
    compute = dtype_name(options.compute_dtype) if options.compute_dtype else default_compute_dtype(name)
    layout = Layout.of(options)
    notes: list[str] = []
    if not isinstance(norm, torch.nn.Module):
        if not callable(norm):
            raise FactoryError(f"factory: returned {type(norm).__name__}, expected a torch module or a callable")
        if options.compile:
            raise InputShapeError("compile: torch.compile needs a torch.nn.Module from the factory")
        if options.gamma_attr or options.beta_attr:
            raise InputShapeError("gamma_attr/beta_attr: the factory returned a plain callable with no parameters")
        notes.append("the factory returned a plain callable: no parameters to draw, tested at gamma = 1, beta = 0")
        return PreparedNorm(_runner(norm, tdtype, layout, d, None), d, name, compute, np.ones(d), np.zeros(d),
                            eps, float(options.weight_offset or 0.0),
                            getattr(norm, "__qualname__", type(norm).__name__),
                            options.groups or 1, options.timeout, options.determinism, tuple(notes))
    module = norm
    module.to(tdtype)
    offset: float | None = options.weight_offset
    try:
        spec = NormSpec.from_module(module)
    except (DeadirError, AttributeError, TypeError):
        spec = None
    if offset is None:
        offset = spec.weight_offset if spec is not None else 0.0
    g_attr, b_attr, e_attr, source = parameter_names(module, options, ("weight", "bias", None))
    g_param = _get(module, g_attr) if g_attr else None
    b_param = _get(module, b_attr) if b_attr else None
    if source != "defaults":
        for attr, param in ((g_attr, g_param), (b_attr, b_param)):
            if attr and not is_torch_tensor(param):
                raise InputShapeError(f"{type(module).__name__}.{attr}: no such tensor ({source} named it)")
    g_param, b_param = (p if is_torch_tensor(p) else None for p in (g_param, b_param))
    if g_param is None:
        params = [n for n, _ in module.named_parameters()]
        if params:
            raise InputShapeError(
                f"{type(module).__name__}: has parameters {params[:8]} but no scale named "
                f"{g_attr or 'weight'}: say which one is the scale with --gamma-attr (and the shift with "
                "--beta-attr), or give the class a deadir_parameters dict; deadir will not test it at gamma = 1 only")
        notes.append(f"{type(module).__name__} has no parameters: tested at gamma = 1, beta = 0")
    if e_attr is None and source == "defaults":
        e_attr = next((a for a in _EPS_NAMES if isinstance(getattr(module, a, None), (float, int))
                       and not isinstance(getattr(module, a, None), bool)), None)
    with torch.no_grad():
        gamma = _write(module, g_attr, g_param, weight, d, float(offset), notes, scale=True)
        beta_now = _write(module, b_attr, b_param, beta, d, 0.0, notes, scale=False)
    module_eps: float | None = None
    if e_attr is not None:
        current = _get(module, e_attr)
        if not isinstance(current, (float, int)) or isinstance(current, bool):
            raise InputShapeError(f"{type(module).__name__}.{e_attr}: not a number ({type(current).__name__})")
        if eps is not None and not options.compile:  # a new ε per example would recompile every call
            _set(module, e_attr, float(eps))
        module_eps = float(_get(module, e_attr))
    elif eps is not None:
        notes.append(f"{type(module).__name__} exposes no eps: the drawn eps is not used, the norm keeps its own")
    assert gamma is not None  # _write returns ones for a missing scale
    module.eval()
    groups = options.groups or (int(module.num_groups) if isinstance(module, torch.nn.GroupNorm) else 1)
    counter: CompileCounter | None = None
    fn: Callable[..., Any] = module
    if options.compile:
        fn, counter = compiled(module)
    return PreparedNorm(_runner(fn, tdtype, layout, d, counter), d, name, compute, gamma,
                        beta_now if beta_now is not None else np.zeros(d), module_eps, float(offset),
                        type(module).__name__, groups, options.timeout, options.determinism, tuple(notes))


def _write(module: Any, attr: str | None, param: Any, values: FloatArray | None, d: int, offset: float,
           notes: list[str], *, scale: bool) -> FloatArray | None:
    """Write ``values`` into ``param`` (length d, or 1 for a scalar gain) and return what the norm applies."""
    import torch

    if param is None:
        return np.ones(d) if scale else None
    n = int(param.numel())
    label = f"{type(module).__name__}.{attr}"
    if n not in (d, 1):
        raise InputShapeError(f"{label}: has {n} entries, expected d={d} (or 1 for a scalar gain)")
    if values is not None:
        vals = values if n == d else values[:1]
        param.copy_(torch.from_numpy(np.ascontiguousarray(vals)).reshape(param.shape))
    if n == 1 and scale:
        notes.append(f"{label} is a scalar gain: gamma = g·1")
    stored = as_vector(param.detach().reshape(-1), name=label)
    return np.full(d, stored[0] + offset) if n == 1 else stored + offset


def _runner(fn: Callable[[Any], Any], tdtype: Any, layout: Layout, d: int,
            counter: CompileCounter | None) -> Callable[[FloatArray], tuple[FloatArray, str]]:
    import torch

    def run(x: FloatArray) -> tuple[FloatArray, str]:
        n = x.shape[0]
        t = torch.from_numpy(np.ascontiguousarray(layout.to_input(x))).to(tdtype)
        with torch.no_grad():
            out = fn(t)
        if counter is not None:
            counter.calls += 1
        if not is_torch_tensor(out):
            raise FactoryError(f"norm: returned {type(out).__name__}, expected a torch tensor")
        y = out.detach().to("cpu", torch.float64)
        if tuple(y.shape) != tuple(t.shape):
            return y.reshape(1, -1).numpy(), str(out.dtype).removeprefix("torch.")  # _run reports the shape
        return np.asarray(layout.to_rows(y, n, d).numpy()), str(out.dtype).removeprefix("torch.")

    return run
