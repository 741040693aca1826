"""Deliberately wrong LayerNorm implementations: the evidence that the fuzzing has teeth.

Each mutant is a torch module with LayerNorm's interface (weight, bias, eps, float32) that
gets one thing wrong. ``CORRECT`` holds implementations that must pass the same pack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _LayerNormLike(torch.nn.Module):
    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.bias = torch.nn.Parameter(torch.zeros(d))
        self.eps = eps

    @staticmethod
    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return mu, var


class TwoPassLayerNorm(_LayerNormLike):
    """Correct: two-pass mean and variance, then γ⊙z + β."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = self.stats(x)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ForgetsCentring(_LayerNormLike):
    """Wrong: divides by σ but never subtracts μ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, var = self.stats(x)
        return x / torch.sqrt(var + self.eps) * self.weight + self.bias


class CentresAfterScaling(_LayerNormLike):
    """Wrong: normalises γ⊙x (scale-then-centre); its kernel is 𝟙, not γ⁻¹."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x * self.weight, (x.shape[-1],), None, None, self.eps) + self.bias


class WrongStatistic(_LayerNormLike):
    """Wrong: divides the centred row by the RMS of the *uncentred* row instead of σ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.stats(x)
        return (x - mu) / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight + self.bias


class BetaBeforeGamma(_LayerNormLike):
    """Wrong: γ⊙(z + β) instead of γ⊙z + β."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), None, None, self.eps).add(self.bias).mul(self.weight)


class DropsEps(_LayerNormLike):
    """Wrong: ignores ε (divides by σ alone)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = self.stats(x)
        return (x - mu) / torch.sqrt(var) * self.weight + self.bias


class WrongAxis(_LayerNormLike):
    """Wrong: normalises over the batch axis (0) instead of the feature axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(0, keepdim=True)
        var = ((x - mu) ** 2).mean(0, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class SilentHalf(_LayerNormLike):
    """Wrong: a float32 module that silently computes in float16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.layer_norm(x.half(), (x.shape[-1],), self.weight.half(), self.bias.half(), self.eps)
        return h.to(x.dtype)


class StdPlusEpsLayerNorm(_LayerNormLike):
    """Correct algebra: divides by std + ε (the Annotated Transformer's form), not √(σ² + ε)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = self.stats(x)
        return (x - mu) / (torch.sqrt(var) + self.eps) * self.weight + self.bias


class UnbiasedStdLayerNorm(_LayerNormLike):
    """Correct algebra: the unbiased std (divides by d − 1), ε inside the root."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=True) if x.shape[-1] > 1 else torch.zeros_like(mu)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class FoldedBiasLayerNorm(_LayerNormLike):
    """Correct algebra, folded bias: x·(rγ) + (β − rγμ) (PyTorch's CPU GroupNorm, Keras on JAX)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = self.stats(x)
        scale = torch.rsqrt(var + self.eps) * self.weight
        return x * scale + (self.bias - scale * mu)


class RenamedEpsLayerNorm(torch.nn.Module):
    """Correct: TwoPassLayerNorm with ε stored as ``epsilon`` (no verdict may depend on the name)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.bias = torch.nn.Parameter(torch.zeros(d))
        self.epsilon = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.epsilon) * self.weight + self.bias


class OffByThreeBounds(_LayerNormLike):
    """Wrong by exactly 3x the new tolerance: each row moved off the hyperplane by 3 times its T10 bound.

    The exact LayerNorm (float64) is pushed along v = γ⁻¹/‖γ⁻¹‖ by 3·(the per-row tolerance of
    deadir.testing.tolerance), so only a tolerance at least 3x too loose lets it pass.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        from deadir.testing.tolerance import effective_normaliser, hyperplane_tolerance

        x64 = x.detach().double().numpy()
        g = self.weight.detach().double().numpy()
        b = self.bias.detach().double().numpy()
        mu = x64.mean(-1, keepdims=True)
        xc = x64 - mu
        y = xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + self.eps) * g + b
        norm = effective_normaliser(x64, y, g, b)
        dtype = str(x.dtype).removeprefix("torch.")
        tol = hyperplane_tolerance(g, b, norm, dtype=dtype, compute_dtype="float32" if dtype != "float64" else dtype)
        v = (1.0 / g) / np.linalg.norm(1.0 / g)
        return torch.from_numpy(y + 3.0 * tol[:, :1] * v).to(x.dtype)


MUTANTS = {
    "forgets centring": ForgetsCentring,
    "centres after scaling": CentresAfterScaling,
    "divides by the wrong statistic": WrongStatistic,
    "applies beta before gamma": BetaBeforeGamma,
    "drops eps": DropsEps,
    "wrong axis": WrongAxis,
    "silently casts to float16": SilentHalf,
    "off the hyperplane by 3x the tolerance": OffByThreeBounds,
}
CORRECT = {
    "torch.nn.LayerNorm": lambda d: torch.nn.LayerNorm(d),
    "two-pass LayerNorm": TwoPassLayerNorm,
    "std + eps LayerNorm": StdPlusEpsLayerNorm,
    "unbiased-std LayerNorm": UnbiasedStdLayerNorm,
    "folded-bias LayerNorm": FoldedBiasLayerNorm,
    "LayerNorm with eps named epsilon": RenamedEpsLayerNorm,
}
# the CORRECT implementations whose output is LayerNorm's formula (√(σ² + ε), biased σ): the others
# are correct algebra in another form and are judged without the LayerNorm reference
LAYERNORM_FORMULA = frozenset({"torch.nn.LayerNorm", "two-pass LayerNorm", "folded-bias LayerNorm",
                               "LayerNorm with eps named epsilon"})
