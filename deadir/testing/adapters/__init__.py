"""Framework adapters: drive a norm of any framework as float64 rows in, float64 rows out.

Each adapter *binds* the object a factory returned: writes the drawn γ (or w of a (1 + w)
scale), β and ε into it, reads back the effective γ and β it will apply, and wraps its
call as ``run(rows (n, d) float64) -> (outputs float64, output dtype name)``, the
:class:`~deadir.testing.assertions.PreparedNorm` every check takes. Frameworks:

* ``torch`` — torch.nn.Module or a callable on torch tensors (:mod:`.torch`), optionally
  ``torch.compile``'d;
* ``numpy`` — a callable on numpy arrays, or a :class:`~deadir.NormSpec` (:mod:`.numpy`);
* ``onnx`` — an ``onnx.ModelProto`` or a ``.onnx`` path holding a norm node, run by
  onnxruntime (:mod:`.onnx`);
* ``jax`` — a flax.linen module, a flax.nnx module or a callable on jax arrays (:mod:`.jax`);
* ``keras`` — a Keras 3 layer on any backend (:mod:`.keras`).

Where the parameters are: ``gamma_attr`` / ``beta_attr`` / ``eps_attr`` name them (CLI
``--gamma-attr`` ...); otherwise an object may carry the protocol attribute
``deadir_parameters = {"gamma": "scale", "beta": "shift", "eps": "epsilon"}`` (a value may be
None: no such parameter); otherwise each adapter looks for the framework's usual names
(``weight``/``bias``/``eps`` in torch). A module with parameters the adapter cannot place
is an ERROR, never silently tested at γ = 1; a parameter-free callable is tested at γ = 1,
β = 0 and the report says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import InputShapeError
from deadir.testing.harness import DEFAULT_TIMEOUT

__all__ = ["FRAMEWORKS", "LAYOUTS", "DriveOptions", "Layout", "bind_norm", "detect_framework", "parameter_names"]

FRAMEWORKS = ("auto", "torch", "numpy", "onnx", "jax", "keras")
LAYOUTS = ("channels-last", "channels-first")


@dataclasses.dataclass(frozen=True)
class DriveOptions:
    """How the pack drives the norm under test (all the CLI's check-norm norm options).

    Attributes:
        framework: one of FRAMEWORKS ("auto" detects from the object).
        gamma_attr, beta_attr, eps_attr: names of the scale, shift and ε (None: protocol or defaults).
        weight_offset: γ = stored weight + offset (1 for Gemma-style (1 + w)); None: from the class.
        compute_dtype: the dtype the norm declares it computes in (None: float32 for half, else the dtype).
        axis: the normalised axis of the input the norm takes (-1: last).
        layout: "channels-first" feeds (1, d, n, 1) tensors (timm LayerNorm2d, ConvNeXt).
        normalized_shape: a multi-dimensional normalised shape (d = its product), last axes.
        groups: channel groups normalised separately (GroupNorm); None: from the class, else 1.
        timeout: seconds one call may take (None: no limit).
        determinism: run each input twice and require agreement within the forward bound.
        compile: torch.compile the module once (dynamic shapes) and require compiled code to run.
        node: the ONNX node to test (None: the only norm node of the graph).
    """

    framework: str = "auto"
    gamma_attr: str | None = None
    beta_attr: str | None = None
    eps_attr: str | None = None
    weight_offset: float | None = None
    compute_dtype: str | None = None
    axis: int = -1
    layout: str = "channels-last"
    normalized_shape: tuple[int, ...] | None = None
    groups: int | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    determinism: bool = True
    compile: bool = False
    node: str | None = None

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise InputShapeError(f"framework: must be one of {FRAMEWORKS}, got {self.framework!r}")
        if self.layout not in LAYOUTS:
            raise InputShapeError(f"layout: must be one of {LAYOUTS}, got {self.layout!r}")
        if self.layout == "channels-first" and (self.axis != -1 or self.normalized_shape):
            raise InputShapeError("layout: channels-first fixes the axis (1); do not combine it with --axis "
                                  "or --normalized-shape")
        if self.normalized_shape is not None and (
                not self.normalized_shape or any(int(s) < 1 for s in self.normalized_shape)):
            raise InputShapeError(f"normalized_shape: expected positive sizes, got {self.normalized_shape!r}")
        if self.normalized_shape is not None and self.axis != -1:
            raise InputShapeError("normalized_shape: the normalised axes are the last ones; do not combine with --axis")
        if self.timeout is not None and not (self.timeout > 0 and np.isfinite(self.timeout)):
            raise InputShapeError(f"timeout: must be a positive number of seconds, got {self.timeout!r}")
        if self.groups is not None and self.groups < 1:
            raise InputShapeError(f"groups: must be ≥ 1, got {self.groups!r}")
        if self.weight_offset is not None and not np.isfinite(self.weight_offset):
            raise InputShapeError(f"weight_offset: must be finite, got {self.weight_offset!r}")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Maps the pack's rows (n, d) to the array the norm takes, and its output back.

    channels-last: (n, d) (or (n, *normalized_shape)); channels-first: (1, d, n, 1); another
    axis a: (1, n, d) with d moved to position a.
    """

    axis: int = -1
    channels_first: bool = False
    normalized_shape: tuple[int, ...] | None = None

    @classmethod
    def of(cls, options: DriveOptions) -> Layout:
        """The layout of ``options``."""
        return cls(options.axis, options.layout == "channels-first", options.normalized_shape)

    @property
    def plain(self) -> bool:
        """True when the norm takes the rows as they are."""
        return self.axis == -1 and not self.channels_first and self.normalized_shape is None

    def to_input(self, rows: Any) -> Any:
        """Rows (n, d) (numpy or torch) in the norm's layout."""
        n, d = rows.shape
        if self.normalized_shape is not None:
            return rows.reshape(n, *self.normalized_shape)
        if self.channels_first:
            return rows.T.reshape(1, d, n, 1)
        if self.axis == -1:
            return rows
        return _moveaxis(rows.reshape(1, n, d), -1, self.axis)

    def to_rows(self, out: Any, n: int, d: int) -> Any:
        """The norm's output back to rows (n, d); the shape must be the input's."""
        if self.normalized_shape is not None:
            return out.reshape(n, d)
        if self.channels_first:
            return out.reshape(d, n).T
        if self.axis == -1:
            return out
        return _moveaxis(out, self.axis, -1).reshape(n, d)

    def input_shape(self, n: int, d: int) -> tuple[int, ...]:
        """The shape :meth:`to_input` produces."""
        return tuple(self.to_input(np.zeros((n, d))).shape)


def _moveaxis(a: Any, src: int, dst: int) -> Any:
    if isinstance(a, np.ndarray):
        return np.moveaxis(a, src, dst)
    return a.movedim(src, dst)


def parameter_names(obj: Any, options: DriveOptions, defaults: tuple[str | None, str | None, str | None]
                    ) -> tuple[str | None, str | None, str | None, str]:
    """(gamma, beta, eps) attribute names and where they came from: options, the protocol, or the defaults.

    Raises:
        InputShapeError: a ``deadir_parameters`` protocol attribute that is not a mapping.
    """
    if options.gamma_attr or options.beta_attr or options.eps_attr:
        return options.gamma_attr, options.beta_attr, options.eps_attr, "options"
    proto = getattr(obj, "deadir_parameters", None)
    if proto is not None:
        if not isinstance(proto, dict):
            raise InputShapeError(f"{type(obj).__name__}.deadir_parameters: expected a dict with keys gamma, beta, "
                                  f"eps, got {type(proto).__name__}")
        return proto.get("gamma"), proto.get("beta"), proto.get("eps"), "deadir_parameters"
    return (*defaults, "defaults")


def detect_framework(obj: Any) -> str:
    """The adapter for a factory's product: by its type's module, never by calling it."""
    from deadir.norms import NormSpec

    if isinstance(obj, NormSpec):
        return "numpy"
    mod = type(obj).__module__ or ""
    top = mod.split(".")[0]
    if top == "keras" or _mro_has(obj, "keras"):  # before torch: a Keras layer on torch is also an nn.Module
        return "keras"
    if top == "torch" or _is_torch_module(obj):
        return "torch"
    if top == "onnx" or (isinstance(obj, str) and obj.endswith(".onnx")):
        return "onnx"
    if top in ("flax", "jax", "jaxlib"):
        return "jax"
    if _mro_has(obj, "flax"):
        return "jax"
    return "torch"  # a plain callable: the pack's historical convention (torch tensors in and out)


def _mro_has(obj: Any, package: str) -> bool:
    return any((k.__module__ or "").split(".")[0] == package for k in type(obj).__mro__)


def _is_torch_module(obj: Any) -> bool:
    return _mro_has(obj, "torch")


def bind_norm(norm: Any, d: int, *, weight: FloatArray | None, beta: FloatArray | None, eps: float | None,
              dtype: str, options: DriveOptions) -> Any:
    """Bind ``norm`` (a factory's product) to the drawn parameters; returns a PreparedNorm.

    ``weight`` is the stored scale to write (γ − offset; the adapter adds the offset back),
    ``beta`` the shift, ``eps`` the ε (None: leave the norm's own).

    Raises:
        InputShapeError: the norm cannot take these parameters (named), or an unknown framework.
        FactoryError: the object is of no framework the pack can drive.
    """
    framework = options.framework if options.framework != "auto" else detect_framework(norm)
    if framework == "torch":
        from deadir.testing.adapters.torch import bind_torch

        return bind_torch(norm, d, weight=weight, beta=beta, eps=eps, dtype=dtype, options=options)
    if framework == "numpy":
        from deadir.testing.adapters.numpy import bind_numpy

        return bind_numpy(norm, d, weight=weight, beta=beta, eps=eps, dtype=dtype, options=options)
    if framework == "onnx":
        from deadir.testing.adapters.onnx import bind_onnx

        return bind_onnx(norm, d, weight=weight, beta=beta, eps=eps, dtype=dtype, options=options)
    if framework == "jax":
        from deadir.testing.adapters.jax import bind_jax

        return bind_jax(norm, d, weight=weight, beta=beta, eps=eps, dtype=dtype, options=options)
    from deadir.testing.adapters.keras import bind_keras

    return bind_keras(norm, d, weight=weight, beta=beta, eps=eps, dtype=dtype, options=options)
