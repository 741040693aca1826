"""T10 floating point: a first-order a-priori bound on the computed residual ⟨v, ŷ − β⟩.

Statement. Computing LayerNorm in the standard model fl(a∘b) = (a∘b)(1+δ), |δ| ≤ u (statistics
and affine map with unit roundoff u_c, final cast with u), to first order in the δ's,

    ⟨γ⁻¹, ŷ − β⟩ = −d·e·r̂ + Σᵢ ẑᵢ(αᵢ + τᵢ + δ₁ᵢ + δ₂ᵢ + δ₃ᵢ) + Σᵢ (βᵢ/γᵢ)(δ₂ᵢ + δ₃ᵢ)

(e the error of the computed mean, r̂ the computed 1/√(σ²+ε)), and therefore

    |⟨γ⁻¹, ŷ − β⟩| ≤ d·γ_{d+1}(u_c)(1+ρ) + 3u_c·d(1+ρ) + u_c(2d + S_β) + u(d + S_β),

S_β = Σ|βᵢ/γᵢ|, ρ ≥ |μ|/σ; dividing by ‖γ⁻¹‖ bounds |⟨v, ŷ − β⟩|, and its square over λmax
bounds vᵀĈv/λmax. This is :func:`deadir.bound.kernel_error_bound`.

Machine-checked (d = 2..5, every quantity symbolic): the value at δ = 0 and every first-order
coefficient of the textbook algorithm and of the fused form ẑᵢ = xᵢr̂ − μ̂r̂ (PyTorch CPU);
‖ẑ‖² = d(σ²+e²)/(σ²+e²+ε) ≤ d; Lagrange's identity behind |zᵢ| ≤ √(d−1) and mean|c| ≤ σ; that
the library function evaluates exactly this formula. Cited: the summation error bound
|fl(Σaᵢ) − Σaᵢ| ≤ γ_{d−1}Σ|aᵢ| and the triangle inequality |Σ aⱼδⱼ| ≤ uΣ|aⱼ|.
Negative control: the same expansion and bound with the |β/γ| term omitted; SymPy refutes the
expansion and float16 numbers exceed the bound.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from deadir.bound import gamma_k, kernel_error_bound, unit_roundoff
from proofs import symbolic as S
from proofs.core import Derivation, ProofResult

THEOREM = "T10"
TITLE = "Floating point: a-priori bound on |⟨v, ŷ − β⟩|"
STATEMENT = (
    "To first order in the unit roundoffs, |⟨γ⁻¹, ŷ − β⟩| "
    "≤ d·γ_{d+1}(u_c)(1+ρ) + 3u_c·d(1+ρ) + u_c(2d + S_β) "
    "+ u(d + S_β), S_β = Σ|βᵢ/γᵢ|; divided by ‖γ⁻¹‖ it bounds |⟨v, ŷ − β⟩|, and squared over λmax it "
    "bounds vᵀĈv/λmax."
)
HYPOTHESES = [
    "standard model fl(a∘b) = (a∘b)(1+δ), |δ| ≤ u, no underflow/overflow",
    "γᵢ ≠ 0; (d+1)u_c < 1",
    "|mean(x)| ≤ ρ·std(x) for the rows considered",
    "first order: terms O(u²) dropped",
]
D_SIZES = range(2, 6)


def _model(d: int, fused: bool) -> tuple[sp.Expr, dict[str, list[sp.Symbol]], dict[str, sp.Expr]]:
    """⟨γ⁻¹, ŷ − β⟩ with every rounding a symbol; returns (expr, rounding symbols, named quantities)."""
    x, g, b = S.vec("x", d), S.vec("gamma", d), S.vec("beta", d)
    e, r = sp.Symbol("e", real=True), sp.Symbol("r", positive=True)
    names = ["alpha", "tau", "delta1", "delta2", "delta3"]
    rs = {n: list(sp.symbols(f"{n}_1:{d + 1}", real=True)) for n in names}
    kappa = sp.Symbol("kappa", real=True)
    mu_hat = S.mean(x) + e
    if fused:
        bias = -r * mu_hat * (1 + kappa)
        z = [(xi * r * (1 + t) + bias) * (1 + a) for xi, t, a in zip(x, rs["tau"], rs["alpha"], strict=True)]
        rs["kappa"] = [kappa]
    else:
        z = [
            (xi - mu_hat) * (1 + a) * r * (1 + t) for xi, a, t in zip(x, rs["alpha"], rs["tau"], strict=True)
        ]
    y = [
        (gi * zi * (1 + d1) + bi) * (1 + d2) * (1 + d3)
        for gi, zi, bi, d1, d2, d3 in zip(g, z, b, rs["delta1"], rs["delta2"], rs["delta3"], strict=True)
    ]
    expr = S.dot(S.inverse(g), S.sub(y, b))
    z0 = [(xi - mu_hat) * r for xi in x]
    return expr, rs, {"e": e, "r": r, "mu_hat": mu_hat, "z0": z0, "g": g, "b": b, "x": x}


def _linear_part(expr: sp.Expr, rs: dict[str, list[sp.Symbol]]) -> tuple[sp.Expr, sp.Expr]:
    """(value at δ = 0, Σ ∂/∂δ|₀ · δ) of expr in all rounding symbols."""
    allsyms = [s for v in rs.values() for s in v]
    at0 = {s: 0 for s in allsyms}
    value = expr.xreplace(at0)
    linear = sp.Add(*[sp.diff(expr, s).xreplace(at0) * s for s in allsyms])
    return value, linear


def _claimed_linear(
    rs: dict[str, list[sp.Symbol]], q: dict[str, sp.Expr], fused: bool, with_beta: bool
) -> sp.Expr:
    z0, g, b = q["z0"], q["g"], q["b"]
    terms = []
    for i in range(len(z0)):
        bg = b[i] / g[i] if with_beta else 0
        if fused:
            terms.append(z0[i] * rs["alpha"][i] + (q["x"][i] * q["r"]) * rs["tau"][i])
        else:
            terms.append(z0[i] * (rs["alpha"][i] + rs["tau"][i]))
        terms.append(z0[i] * rs["delta1"][i] + (z0[i] + bg) * (rs["delta2"][i] + rs["delta3"][i]))
    if fused:
        terms.append(-len(z0) * q["r"] * q["mu_hat"] * rs["kappa"][0])
    return sp.Add(*terms)


def _expansion_steps(der: Derivation, with_beta: bool) -> None:
    for fused in (False, True):
        label = "fused ẑ = x·r̂ − μ̂·r̂" if fused else "textbook ẑ = (x − μ̂)·r̂"

        def value(d: int, fused: bool = fused) -> sp.Expr:
            expr, rs, q = _model(d, fused)
            return _linear_part(expr, rs)[0] + d * q["e"] * q["r"]

        def linear(d: int, fused: bool = fused) -> sp.Expr:
            expr, rs, q = _model(d, fused)
            return _linear_part(expr, rs)[1] - _claimed_linear(rs, q, fused, with_beta)

        if with_beta:
            der.family(
                f"zeroth order, {label}",
                "With every δ = 0 the pairing is the centring error alone: −d·e·r̂.",
                r"\langle\gamma^{-1},\hat y-\beta\rangle\big|_{\delta=0} = -d\,e\,\hat r",
                [(f"d={d}", lambda d=d: value(d)) for d in D_SIZES],
            )
        der.family(
            f"first-order coefficients, {label}",
            "Every partial derivative in a rounding variable at δ = 0 equals the claimed coefficient: "
            + (
                "ẑᵢ for αᵢ, τᵢ, δ₁ᵢ and ẑᵢ + βᵢ/γᵢ for δ₂ᵢ, δ₃ᵢ"
                if with_beta
                else "claim WITHOUT the βᵢ/γᵢ term"
            )
            + (
                " (fused: xᵢr̂ = ẑᵢ + μ̂r̂ for τᵢ and −d·μ̂r̂ for the rounding κ of the shared bias −μ̂r̂)"
                if fused
                else ""
            )
            + ".",
            r"\sum_j "
            r"\frac{\partial\langle\gamma^{-1},\hat y-\beta\rangle}{\partial\delta_j}\Big|_0\delta_j = "
            + (
                r"\sum_i \hat z_i\alpha_i + \sum_i x_i\hat r\,\tau_i - d\,\hat\mu\hat r\,\kappa"
                r" + \sum_i \hat z_i\delta_{1i}"
                if fused
                else r"\sum_i \hat z_i(\alpha_i+\tau_i+\delta_{1i})"
            )
            + r" + \sum_i\Big(\hat z_i"
            + (r" + \frac{\beta_i}{\gamma_i}" if with_beta else "")
            + r"\Big)(\delta_{2i}+\delta_{3i})",
            [(f"d={d}", lambda d=d: linear(d)) for d in D_SIZES],
        )


def _magnitude_steps(der: Derivation) -> None:
    def norm_sq(d: int) -> sp.Expr:
        x = S.vec("x", d)
        e = sp.Symbol("e", real=True)
        c = S.centred(x)
        var = S.mean([ci**2 for ci in c])
        return sp.expand(sp.Add(*[(ci - e) ** 2 for ci in c]) - d * (var + e**2))

    der.family(
        "norm of ẑ",
        "Σ(cᵢ − e)² = d(σ² + e²) (Σcᵢ = 0), so ‖ẑ‖² = d(σ²+e²)/(σ²+e²+ε) ≤ d and r̂ ≤ 1/σ.",
        r"\sum_i (c_i - e)^2 = d(\sigma^2 + e^2)",
        [(f"d={d}", lambda d=d: norm_sq(d)) for d in range(2, 9)],
    )

    def lagrange(n: int) -> sp.Expr:
        a = S.vec("a", n)
        lhs = n * sp.Add(*[ai**2 for ai in a]) - sp.Add(*a) ** 2
        rhs = sp.Add(*[(a[i] - a[j]) ** 2 for i in range(n) for j in range(i + 1, n)])
        return sp.expand(lhs - rhs)

    der.family(
        "Lagrange identity",
        "n·Σaᵢ² − (Σaᵢ)² = Σ_{i<j}(aᵢ − aⱼ)² ≥ 0. With aᵢ = |cᵢ|: mean|c| ≤ σ, so |e| ≤ γ_{d+1}(|μ| + σ). "
        "With n = d − 1 and z₁ = −Σ_{i≥2} zᵢ: z₁² ≤ (d−1)(‖z‖² "
        "− z₁²), so |zᵢ| ≤ √(d−1) and Σ|zᵢ| ≤ √d‖z‖ ≤ d.",
        r"n\sum_i a_i^2 - \Big(\sum_i a_i\Big)^2 = \sum_{i<j}(a_i - a_j)^2",
        [(f"n={n}", lambda n=n: lagrange(n)) for n in range(2, 9)],
    )
    der.cite(
        "summation error",
        "Any order of recursive summation: |fl(Σaᵢ) − Σaᵢ| ≤ γ_{d−1}Σ|aᵢ|; one more rounding "
        "for the division by d gives γ_{d+1}.",
        r"|\hat\mu - \mu| \le \gamma_{d+1}\,\tfrac1d\sum_i|x_i|",
    )
    der.cite(
        "triangle inequality",
        "|Σⱼ aⱼδⱼ| ≤ u Σⱼ|aⱼ| for |δⱼ| ≤ u; summing the coefficients above gives the "
        "stated bound (3 standardisation roundings of magnitude ≤ |zᵢ| + ρ, two affine ones, one cast).",
        r"\Big|\sum_j a_j\delta_j\Big| \le u\sum_j |a_j|",
    )


def _formula(d: int, u: float, uc: float, rho: float, s_beta: float, cast: bool) -> float:
    return (
        d * gamma_k(d + 1, uc) * (1 + rho)
        + 3 * uc * d * (1 + rho)
        + uc * (2 * d + s_beta)
        + (u * (d + s_beta) if cast else 0.0)
    )


def _library_step(der: Derivation) -> None:
    rng = np.random.default_rng(0)
    ok = True
    worst = 0.0
    for d, dt, ct in [
        (4, "float16", "float32"),
        (64, "bfloat16", "float32"),
        (768, "float32", None),
        (8, "float64", None),
    ]:
        g, b = rng.normal(1, 0.3, d), rng.normal(0, 0.5, d)
        rho = 0.7
        bound = kernel_error_bound(g, dt, beta=b, compute_dtype=ct, mean_ratio=rho)
        u, uc = unit_roundoff(dt), unit_roundoff(ct or dt)
        expect = _formula(d, u, uc, rho, float(np.sum(np.abs(b / g))), ct is not None and ct != dt)
        rel = abs(bound.residual_raw - expect) / expect
        worst = max(worst, rel)
        ok &= rel < 1e-12 and math.isclose(
            bound.residual * float(np.linalg.norm(1 / g)), expect, rel_tol=1e-12
        )
    der.fact(
        "library function",
        "deadir.bound.kernel_error_bound evaluates exactly this formula (4 configurations, "
        f"float16/bfloat16/float32/float64; largest relative difference {worst:.1e}).",
        r"\texttt{kernel\_error\_bound}(\gamma,\ldots).\mathrm{residual\_raw} = \text{formula}",
        ok,
        "numeric comparison, rtol 1e-12",
    )


def float16_residuals(seed: int = 0, rows: int = 400) -> tuple[float, float, float]:
    """(max measured |⟨v, ŷ − β⟩|, full bound, bound without β/γ) for a float16 LayerNorm with a tiny γ₁.

    The output is rounded to float16 from an exact (float64) LayerNorm, so u_c is float64's and
    the cast carries the error; γ₁ = 0.01 with β₁ = 4 makes |β₁/γ₁| = 400.
    """
    rng = np.random.default_rng(seed)
    d = 8
    gamma = np.ones(d, dtype=np.float16)
    gamma[0] = np.float16(0.01)
    beta = np.zeros(d, dtype=np.float16)
    beta[0] = np.float16(4.0)
    g, b = gamma.astype(np.float64), beta.astype(np.float64)
    x = rng.normal(size=(rows, d)).astype(np.float16).astype(np.float64)
    z = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    y_hat = (g * z + b).astype(np.float16).astype(np.float64)
    v = (1 / g) / np.linalg.norm(1 / g)
    measured = float(np.max(np.abs((y_hat - b) @ v)))
    rho = float(np.max(np.abs(x.mean(1)) / x.std(1)))
    full = kernel_error_bound(gamma, "float16", beta=beta, compute_dtype="float64", mean_ratio=rho).residual
    without = kernel_error_bound(gamma, "float16", compute_dtype="float64", mean_ratio=rho).residual
    return measured, full, without


def _numeric_step(der: Derivation, with_beta: bool) -> None:
    measured, full, without = float16_residuals()
    bound = full if with_beta else without
    der.fact(
        "float16 numbers",
        f"float16 LayerNorm, d = 8, γ₁ = 0.01, β₁ = 4 (|β₁/γ₁| = 400), 400 Gaussian rows: max measured "
        f"|⟨v, ŷ − β⟩| = {measured:.3e}, bound "
        f"{'with' if with_beta else 'WITHOUT'} the |β/γ| term = {bound:.3e}.",
        r"\max_k |\langle v, \hat y_k - \beta\rangle| \le \text{bound}",
        measured <= bound,
        "numeric evaluation (float16 outputs, float64 arithmetic for the measurement)",
        witness=f"measured {measured:.3e} exceeds the bound {bound:.3e} by ×{measured / bound:.0f}",
    )


def _derive(with_beta: bool) -> ProofResult:
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        "first-order expansion d = 2..5 (all symbolic); bound any d",
        control=None if with_beta else "bound omitting the |β/γ| term",
    )
    _expansion_steps(der, with_beta)
    if with_beta:
        _magnitude_steps(der)
        _library_step(der)
    _numeric_step(der, with_beta)
    if with_beta:
        der.note(
            "Derivation of the bound. Each first-order coefficient "
            "is bounded in absolute value and multiplied "
            "by the unit roundoff of its operation: the centring term d·|e|·r̂ ≤ d·γ_{d+1}(u_c)(|μ| + σ)/σ ≤ "
            "d·γ_{d+1}(u_c)(1 + ρ) (summation-error lemma, mean|c| ≤ σ by the Lagrange identity, r̂ ≤ 1/σ by "
            "the norm step); the standardisation roundings (αᵢ, "
            "τᵢ, and κ in the fused form) have coefficients "
            "of magnitude ≤ |ẑᵢ| + ρ, summing to ≤ 3u_c·d(1 + "
            "ρ) with Σ|ẑᵢ| ≤ d; the product γᵢẑᵢ contributes "
            "u_c·Σ|ẑᵢ| ≤ u_c·d; the addition of βᵢ contributes u_c·Σ|ẑᵢ + βᵢ/γᵢ| ≤ u_c(d + S_β); the final "
            "cast u(d + S_β). Dividing by ‖γ⁻¹‖ gives the residual along the unit vector v."
        )
        der.note(
            "Rayleigh quotient: for N computed rows, vᵀĈv = (1/N)Σ_k(⟨v, ŷ_k − β⟩ − mean)² ≤ "
            "max_k⟨v, ŷ_k − β⟩² ≤ residual², so vᵀĈv/λmax ≤ residual²/λmax (×N/(N−1) for the unbiased "
            "covariance)."
        )
    der.note(
        "The expansion is exact to first order (the checked Jacobian); O(u²) remainders are not bounded here."
    )
    der.note(
        "No bound independent of the input exists without ρ ≥ "
        "|μ|/σ: the computed mean's error is amplified by 1/σ."
    )
    return der.result()


def prove() -> ProofResult:
    """Derive T10."""
    return _derive(True)


CONTROLS = {"bound-without-beta-over-gamma": lambda: _derive(False)}
