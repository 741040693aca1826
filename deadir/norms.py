"""NormSpec: a normalisation layer as data, with a float64 reference forward.

``NormSpec.from_module`` maps a module to a spec through a table keyed by class
name (``module.qualname``) and searched along the class's MRO, so supporting a
new class (a Hugging Face norm, say) is one :func:`register_norm_class` call and
importing ``transformers`` is never needed to build the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, get_args

import numpy as np

from deadir.arrays import FloatArray, as_float64, as_vector
from deadir.direction import effective_scale
from deadir.errors import InputShapeError, UnknownNormError

NormKind = Literal["layernorm", "rmsnorm", "groupnorm", "scale-then-centre", "affine-only"]
"""What a norm computes. "affine-only" (y = γ⊙x + β, no normalisation: MobileBERT's NoNorm, or a probed
module that only scales) is distinct from :data:`deadir.classify.ClassKind`'s "none", a probe verdict."""
NORM_KINDS: tuple[str, ...] = get_args(NormKind)


@dataclasses.dataclass(frozen=True, eq=False)
class NormSpec:
    """A normalisation layer over the last axis of size ``d``.

    Attributes:
        kind: "layernorm" (y = γ⊙(x−μ)/√(σ²+ε) + β), "rmsnorm" (y = γ⊙x/√(mean x²+ε) + β),
            "groupnorm" (layernorm statistics per contiguous group of d/groups channels),
            "scale-then-centre" (y = centre-normalise(γ⊙x) + β) or "affine-only" (y = γ⊙x + β).
        weight: stored scale w (float64, shape (d,)), or None for no affine scale.
        bias: β (float64, shape (d,)), or None.
        eps: ε ≥ 0 added to the variance (or mean square).
        weight_offset: the effective scale is γ = w + weight_offset (1.0 for Gemma's (1 + w)).
        groups: number of groups (groupnorm only; 1 otherwise).
        d: the normalised size; derived from ``weight`` or ``bias`` when given.
        dtype: the dtype the module computes in (informational, e.g. "float32"), or None.
        source: the class the spec was read from, for reports.
    """

    kind: NormKind
    weight: FloatArray | None = None
    bias: FloatArray | None = None
    eps: float = 1e-5
    weight_offset: float = 0.0
    groups: int = 1
    d: int | None = None
    dtype: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in NORM_KINDS:
            raise InputShapeError(f"NormSpec.kind: unknown kind {self.kind!r}; expected one of {NORM_KINDS}")
        sizes = {}
        for field in ("weight", "bias"):
            value = getattr(self, field)
            if value is not None:
                vec = as_vector(value, name=f"NormSpec.{field}")
                if not np.all(np.isfinite(vec)):
                    raise InputShapeError(f"NormSpec.{field}: contains NaN or infinite entries")
                object.__setattr__(self, field, vec)
                sizes[field] = vec.size
        if self.d is not None:
            sizes["d"] = self.d
        if len(set(sizes.values())) > 1:
            raise InputShapeError(f"NormSpec: inconsistent sizes {sizes}")
        if not sizes:
            raise InputShapeError("NormSpec: d is required when neither weight nor bias is given")
        d = next(iter(sizes.values()))
        if d < 1:
            raise InputShapeError(f"NormSpec.d: must be ≥ 1, got {d}")
        object.__setattr__(self, "d", int(d))
        if not (np.isfinite(self.eps) and self.eps >= 0.0):
            raise InputShapeError(f"NormSpec.eps: must be finite and ≥ 0, got {self.eps!r}")
        if not np.isfinite(self.weight_offset):
            raise InputShapeError(f"NormSpec.weight_offset: must be finite, got {self.weight_offset!r}")
        if self.kind != "groupnorm" and self.groups != 1:
            raise InputShapeError(f"NormSpec.groups: only groupnorm has groups, got {self.groups} for {self.kind}")
        if self.groups < 1 or d % self.groups:
            raise InputShapeError(f"NormSpec.groups: {self.groups} does not divide d={d}")

    @property
    def size(self) -> int:
        """The normalised size d."""
        assert self.d is not None  # set in __post_init__
        return self.d

    @property
    def gamma(self) -> FloatArray:
        """Effective scale γ = weight + weight_offset (ones when there is no weight), float64."""
        if self.weight is None:
            return np.full(self.size, 1.0 + self.weight_offset)
        return np.asarray(self.weight + self.weight_offset, dtype=np.float64)

    @property
    def beta(self) -> FloatArray:
        """Shift β (zeros when there is no bias), float64."""
        return np.zeros(self.size) if self.bias is None else np.asarray(self.bias, dtype=np.float64)

    @property
    def has_mean_centring(self) -> bool:
        """Whether the theory predicts a kernel of the output covariance (T2, T9)."""
        return self.kind in ("layernorm", "groupnorm", "scale-then-centre")

    def predicted_kernel(self) -> FloatArray:
        """Orthonormal basis (d × k, float64) of the kernel the theorems predict.

        layernorm: γ⁻¹ (T2); groupnorm: γ⁻¹ restricted to each group (T9);
        scale-then-centre: 𝟙 (T9); rmsnorm and affine-only: empty (d × 0).

        Raises:
            DegenerateScaleError: a zero effective scale, for which γ⁻¹ is undefined (T6).
        """
        d = self.size
        if self.kind == "scale-then-centre":
            return np.full((d, 1), 1.0 / np.sqrt(d))
        if self.kind not in ("layernorm", "groupnorm"):
            return np.zeros((d, 0))
        inv = 1.0 / effective_scale(self.gamma, name=f"{self.source or 'NormSpec'}.gamma")
        size = d // self.groups
        basis = np.zeros((d, self.groups))
        for g in range(self.groups):
            block = inv[g * size : (g + 1) * size]
            basis[g * size : (g + 1) * size, g] = block / np.linalg.norm(block)
        return basis

    def apply(self, x: Any) -> FloatArray:
        """Float64 reference forward over the last axis; ``x`` has shape (..., d).

        Raises:
            InputShapeError: the last axis is not of size d.
        """
        xs = as_float64(x, name="x")
        if xs.ndim == 0 or xs.shape[-1] != self.size:
            raise InputShapeError(f"x: expected shape (..., {self.size}), got {tuple(xs.shape)}")
        gamma, beta = self.gamma, self.beta
        if self.kind == "layernorm":
            y = _centre_normalise(xs, self.eps) * gamma + beta
        elif self.kind == "groupnorm":
            shape = (*xs.shape[:-1], self.groups, self.size // self.groups)
            y = _centre_normalise(xs.reshape(shape), self.eps).reshape(xs.shape) * gamma + beta
        elif self.kind == "scale-then-centre":
            y = _centre_normalise(xs * gamma, self.eps) + beta
        elif self.kind == "rmsnorm":
            y = xs / np.sqrt(np.mean(xs * xs, axis=-1, keepdims=True) + self.eps) * gamma + beta
        else:
            y = xs * gamma + beta
        return np.asarray(y, dtype=np.float64)

    def with_params(self, *, weight: Any = None, bias: Any = None) -> NormSpec:
        """A copy with a new weight and/or bias (None keeps the current one)."""
        return dataclasses.replace(
            self,
            weight=self.weight if weight is None else as_vector(weight, name="weight"),
            bias=self.bias if bias is None else as_vector(bias, name="bias"),
        )

    @classmethod
    def from_module(cls, module: Any) -> NormSpec:
        """Read a normalisation module into a spec (weights copied to float64).

        Supported: torch.nn.LayerNorm (with or without affine/bias, one normalised
        dimension), torch.nn.RMSNorm, torch.nn.GroupNorm, and every class added with
        :func:`register_norm_class` (matched along the MRO).

        Raises:
            UnknownNormError: the class (named in the message) is not in the table.
            InputShapeError: a supported class in an unsupported configuration.
        """
        for klass in type(module).__mro__:
            reader = _READERS.get(f"{klass.__module__}.{klass.__qualname__}")
            if reader is not None:
                return reader(module)
        name = f"{type(module).__module__}.{type(module).__qualname__}"
        raise UnknownNormError(
            f"{name}: not a normalisation class deadir can read; known classes: {sorted(_READERS)} "
            "(use deadir.classify_norm to probe an unknown norm, or deadir.register_norm_class)"
        )


def _centre_normalise(x: FloatArray, eps: float) -> FloatArray:
    mu = np.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    return np.asarray(xc / np.sqrt(var + eps), dtype=np.float64)


Reader = Callable[[Any], NormSpec]
_READERS: dict[str, Reader] = {}


def register_norm_class(qualified_name: str, reader: Reader) -> None:
    """Register ``reader(module) -> NormSpec`` for the class named ``module.qualname``."""
    _READERS[qualified_name] = reader


def known_norm_classes() -> tuple[str, ...]:
    """Qualified names of every class :meth:`NormSpec.from_module` can read."""
    return tuple(sorted(_READERS))


def _param(module: Any, name: str) -> FloatArray | None:
    p = getattr(module, name, None)
    return None if p is None else as_float64(p, name=f"{type(module).__name__}.{name}").reshape(-1)


def _dtype_name(module: Any) -> str | None:
    for p in getattr(module, "parameters", lambda: iter(()))():
        return str(p.dtype).removeprefix("torch.")
    return None


def _single_dim(module: Any, shape: Any) -> int:
    dims = tuple(shape)
    if len(dims) != 1:
        raise InputShapeError(
            f"{type(module).__name__}: normalised_shape {dims} has more than one dimension; "
            "deadir reads norms over a single (last) axis"
        )
    return int(dims[0])


def _torch_layernorm(m: Any) -> NormSpec:
    return NormSpec(
        "layernorm", _param(m, "weight"), _param(m, "bias"), float(m.eps),
        d=_single_dim(m, m.normalized_shape), dtype=_dtype_name(m), source=type(m).__name__,
    )


def _torch_rmsnorm(m: Any) -> NormSpec:
    import torch

    # eps=None means "machine epsilon of the input dtype"; record it for the parameter dtype
    eps = m.eps if m.eps is not None else float(torch.finfo(_torch_dtype(m)).eps)
    return NormSpec(
        "rmsnorm", _param(m, "weight"), None, float(eps),
        d=_single_dim(m, m.normalized_shape), dtype=_dtype_name(m), source=type(m).__name__,
    )


def _torch_groupnorm(m: Any) -> NormSpec:
    return NormSpec(
        "groupnorm", _param(m, "weight"), _param(m, "bias"), float(m.eps),
        groups=int(m.num_groups), d=int(m.num_channels), dtype=_dtype_name(m), source=type(m).__name__,
    )


def _torch_dtype(m: Any) -> Any:
    import torch

    for p in m.parameters():
        return p.dtype
    return torch.get_default_dtype()


register_norm_class("torch.nn.modules.normalization.LayerNorm", _torch_layernorm)
register_norm_class("torch.nn.modules.normalization.RMSNorm", _torch_rmsnorm)
register_norm_class("torch.nn.modules.normalization.GroupNorm", _torch_groupnorm)
