"""Tiny norm factories for ``deadir check-norm`` and the pack's own tests.

``deadir check-norm deadir.testing.examples:layernorm`` passes; with
``deadir.testing.examples:rmsnorm --expect mean-centring`` it fails with a counterexample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deadir.errors import DeadirError
from deadir.norms import NormSpec


def layernorm(d: int) -> Any:
    """torch.nn.LayerNorm(d) with bias (mean-centring)."""
    import torch

    return torch.nn.LayerNorm(d)


def layernorm_nobias(d: int) -> Any:
    """torch.nn.LayerNorm(d, bias=False) (mean-centring)."""
    import torch

    return torch.nn.LayerNorm(d, bias=False)


def rmsnorm(d: int) -> Any:
    """torch.nn.RMSNorm(d, eps=1e-6) (RMS-like: no kernel)."""
    import torch

    return torch.nn.RMSNorm(d, eps=1e-6)


def functional_layernorm(d: int) -> Any:
    """A plain callable (no parameters): torch.nn.functional.layer_norm over the last axis, γ = 1, β = 0."""
    import torch

    def norm(x: Any) -> Any:
        return torch.nn.functional.layer_norm(x, (d,), eps=1e-5)

    return norm


def functional_rmsnorm(d: int) -> Any:
    """A plain callable (no parameters): torch.nn.functional.rms_norm over the last axis, γ = 1."""
    import torch

    def norm(x: Any) -> Any:
        return torch.nn.functional.rms_norm(x, (d,), eps=1e-6)

    return norm


BUILTIN_NORMS = ("layernorm", "layernorm-nobias", "rmsnorm", "groupnorm", "scale-then-centre", "identity", "tanh")


def build_builtin_norm(kind: str, d: int, *, groups: int, gamma: np.ndarray, beta: np.ndarray, dtype: str) -> Any:
    """A torch module (or NormSpec for scale-then-centre) of a built-in kind with the given γ and β."""
    import torch

    tdtype = getattr(torch, dtype)
    module: Any
    if kind in ("layernorm", "layernorm-nobias"):
        module = torch.nn.LayerNorm(d, bias=kind == "layernorm")
    elif kind == "rmsnorm":
        module = torch.nn.RMSNorm(d, eps=1e-6)
    elif kind == "groupnorm":
        if groups < 1 or d % groups:
            raise DeadirError(f"--groups: {groups} groups do not divide d={d} channels evenly")
        module = torch.nn.GroupNorm(groups, d)
    elif kind == "scale-then-centre":
        return NormSpec("scale-then-centre", gamma, beta, 1e-5)
    elif kind == "identity":
        return torch.nn.Identity()
    elif kind == "tanh":
        return torch.nn.Tanh()
    else:
        raise DeadirError(f"norm kind {kind!r}: expected one of {BUILTIN_NORMS}")
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(gamma))
        if getattr(module, "bias", None) is not None:
            module.bias.copy_(torch.as_tensor(beta))
    return module.to(tdtype)


def draw_gamma(d: int, *, spread: float, seed: int) -> np.ndarray:
    """γ with mixed signs and log-uniform magnitudes in [1/spread, spread] (all ones when spread == 1)."""
    rng = np.random.default_rng(seed)
    if spread == 1.0:
        return np.ones(d)
    mags = np.exp(rng.uniform(-np.log(spread), np.log(spread), d))
    return np.asarray(mags * rng.choice([-1.0, 1.0], d), dtype=np.float64)


def onnx_norm_model(op: str, d: int, *, opset: int, eps: float = 1e-5, bias: bool = True) -> Any:
    """A one-node ONNX model ``op`` (LayerNormalization, RMSNormalization) over the last axis of size d.

    Raises:
        ImportError: onnx is not installed (extra ``deadir[onnx]``).
    """
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ones(d, dtype=np.float32), name="scale")]
    inputs = ["X", "scale"]
    if bias:
        inits.append(numpy_helper.from_array(np.zeros(d, dtype=np.float32), name="bias"))
        inputs.append("bias")
    node = helper.make_node(op, inputs, ["Y"], name="norm", axis=-1, epsilon=eps)
    graph = helper.make_graph([node], "norm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def onnx_layernorm(d: int) -> Any:
    """ONNX LayerNormalization (opset 17) with scale and bias, run by onnxruntime."""
    return onnx_norm_model("LayerNormalization", d, opset=17)


def onnx_rmsnorm(d: int) -> Any:
    """ONNX RMSNormalization (opset 23), run by onnxruntime."""
    return onnx_norm_model("RMSNormalization", d, opset=23, bias=False)


def _numpy_layernorm(d: int, *, half_statistics: bool, fast_variance: bool = False) -> Any:
    class NumpyLayerNorm:
        deadir_parameters = {"gamma": "gamma", "beta": "beta", "eps": "eps"}  # noqa: RUF012 - the documented protocol

        def __init__(self) -> None:
            self.gamma = np.ones(d, dtype=np.float32)
            self.beta = np.zeros(d, dtype=np.float32)
            self.eps = 1e-5

        def __call__(self, x: Any) -> Any:
            # half inputs: statistics and the affine map in float32, as PyTorch computes them; float16's
            # squares underflow below 6e-8, so a half-precision variance of a narrow row is 0 (inf with ε = 0)
            c = x if half_statistics or x.dtype.itemsize >= 4 else x.astype(np.float32)
            mu = c.mean(axis=-1, keepdims=True)
            xc = c - mu
            if fast_variance:  # E[x²] − E[x]², clamped at 0 (flax's default use_fast_variance=True)
                var = np.maximum((c * c).mean(axis=-1, keepdims=True) - mu * mu, c.dtype.type(0))
            else:
                var = (xc * xc).mean(axis=-1, keepdims=True)
            y = xc / np.sqrt(var + c.dtype.type(self.eps)) * self.gamma.astype(c.dtype) + self.beta.astype(c.dtype)
            return y.astype(x.dtype)  # one final rounding to the input dtype

    return NumpyLayerNorm()


def numpy_layernorm(d: int) -> Any:
    """A two-pass LayerNorm in NumPy with ``gamma``/``beta`` attributes: float32 statistics for half inputs.

    float64 and float32 inputs are computed in their own dtype; float16 and bfloat16 inputs in
    float32, the result rounded once to the input dtype (PyTorch's rule), so it is a correct
    reference in every dtype.
    """
    return _numpy_layernorm(d, half_statistics=False)


def numpy_layernorm_half_statistics(d: int) -> Any:
    """Planted mutant: :func:`numpy_layernorm` keeping its mean and variance in float16/bfloat16 (FAILs check-norm)."""
    return _numpy_layernorm(d, half_statistics=True)


def numpy_layernorm_fast_variance(d: int) -> Any:
    """Planted mutant: :func:`numpy_layernorm` with a one-pass variance E[x²] − E[x]² (cancels when |μ| ≫ σ)."""
    return _numpy_layernorm(d, half_statistics=False, fast_variance=True)


def raising_factory(d: int) -> Any:
    """A factory that raises (the pack's ERROR verdict, exit 2)."""
    raise RuntimeError(f"this factory cannot build a norm of size {d}")


def hanging_norm(d: int) -> Any:
    """A LayerNorm whose call never returns (the per-call timeout's negative control)."""
    import threading

    import torch

    class Hangs(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            threading.Event().wait()
            return super().forward(x)

    return Hangs(d)


def layernorm_2d(d: int) -> Any:
    """timm-style LayerNorm2d: (N, C, H, W) normalised over C (use --layout channels-first)."""
    import torch

    class LayerNorm2d(torch.nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    return LayerNorm2d(d)


def annotated_layernorm(d: int) -> Any:
    """The Annotated Transformer's LayerNorm: a_2·(x − mean)/(std + eps) + b_2, std unbiased (--gamma-attr a_2)."""
    import torch

    class LayerNorm(torch.nn.Module):
        def __init__(self, features: int, eps: float = 1e-6) -> None:
            super().__init__()
            self.a_2 = torch.nn.Parameter(torch.ones(features))
            self.b_2 = torch.nn.Parameter(torch.zeros(features))
            self.eps = eps

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(-1, keepdim=True)
            std = x.std(-1, keepdim=True)
            return self.a_2 * (x - mean) / (std + self.eps) + self.b_2

    return LayerNorm(d)


def eager_only_layernorm(d: int) -> Any:
    """A LayerNorm whose forward dynamo cannot compile (torch._dynamo.disable): --compile must report ERROR."""
    import torch

    class EagerOnly(torch.nn.LayerNorm):
        @torch._dynamo.disable  # type: ignore[untyped-decorator]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x)

    return EagerOnly(d)


def flax_nnx_layernorm(d: int) -> Any:
    """flax.nnx.LayerNorm(d) (default use_fast_variance=True)."""
    from flax import nnx

    return nnx.LayerNorm(d, rngs=nnx.Rngs(0))


def flax_nnx_layernorm_two_pass(d: int) -> Any:
    """flax.nnx.LayerNorm(d, use_fast_variance=False): the two-pass variance."""
    from flax import nnx

    return nnx.LayerNorm(d, use_fast_variance=False, rngs=nnx.Rngs(0))


def flax_nnx_rmsnorm(d: int) -> Any:
    """flax.nnx.RMSNorm(d)."""
    from flax import nnx

    return nnx.RMSNorm(d, rngs=nnx.Rngs(0))


def flax_linen_layernorm(d: int) -> Any:
    """flax.linen.LayerNorm() (parameters created on first use; default use_fast_variance=True)."""
    from flax import linen

    return linen.LayerNorm()


def flax_linen_layernorm_two_pass(d: int) -> Any:
    """flax.linen.LayerNorm(use_fast_variance=False): the two-pass variance."""
    from flax import linen

    return linen.LayerNorm(use_fast_variance=False)


def keras_layernorm(d: int) -> Any:
    """keras.layers.LayerNormalization() on the backend KERAS_BACKEND selects."""
    import keras

    return keras.layers.LayerNormalization()


def keras_rmsnorm(d: int) -> Any:
    """keras.layers.RMSNormalization() (scale weight ``scale``: use --gamma-attr scale)."""
    import keras

    return keras.layers.RMSNormalization()


def adaptive_layernorm(d: int) -> Any:
    """DiT-style adaLN: LayerNorm(x)·(1 + scale(cond)) + shift(cond), cond of size 8 (use --conditioned)."""
    import torch

    class AdaLN(torch.nn.Module):
        deadir_cond_dim = 8

        def __init__(self) -> None:
            super().__init__()
            self.ln = torch.nn.LayerNorm(d, elementwise_affine=False)
            self.proj = torch.nn.Linear(8, 2 * d)
            torch.nn.init.normal_(self.proj.weight, std=0.5, generator=torch.Generator().manual_seed(d))

        def deadir_affine(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scale, shift = self.proj(cond).chunk(2, dim=-1)
            return 1.0 + scale, shift

        def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            gamma, beta = self.deadir_affine(cond)
            out: torch.Tensor = self.ln(x) * gamma + beta
            return out

    return AdaLN()


def adaptive_rmsnorm(d: int) -> Any:
    """adaLN over an RMSNorm (no centring): --conditioned must FAIL T1 on it."""
    import torch

    norm = adaptive_layernorm(d)
    norm.ln = torch.nn.RMSNorm(d, elementwise_affine=False)
    return norm
