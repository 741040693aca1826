"""T7 read side: parameter directions of a layer reading LayerNorm outputs that change nothing.

Statement. Let y be a LayerNorm output (hypotheses of T1).
(a) A linear consumer f(y) = Wy + b is unchanged by (δW, δb) = (uγ⁻¹ᵀ, −⟨γ⁻¹,β⟩u) for every u.
(b) softmax(ℓ + c𝟙) = softmax(ℓ); hence a bias-free LM head ℓ = Wy is unchanged in output
    probabilities along δW = 𝟙γ⁻¹ᵀ (it shifts every logit by t⟨γ⁻¹, β⟩).
(c) Along that direction the logit Jacobian is J_δ = ⟨γ⁻¹,β⟩𝟙 and the directional Fisher
    information J_δᵀ(diag p − ppᵀ)J_δ is exactly 0 for every input, so its expectation is 0.
(d) Attention: adding the same vector c to every key leaves each query's softmax unchanged;
    δW_K = uγ⁻¹ᵀ adds exactly such a vector, u⟨γ⁻¹, β⟩. With rotary position rotations the
    added vector is rotated differently at each position and the invariance fails (control).

Machine-checked for symbolic d (a) and concrete sizes (a–d) by exact simplification.
Negative controls: rotary keys; LM-head direction u = e₁ (not ∝ 𝟙) with ⟨γ⁻¹,β⟩ ≠ 0 (Fisher
> 0); the linear consumer without the bias correction δb.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from proofs import symbolic as S
from proofs.core import Derivation, Mutant, ProofResult

THEOREM = "T7"
TITLE = "Read side: function-preserving (δW, δb), Fisher 0"
STATEMENT = (
    "(δW, δb) = (uγ⁻¹ᵀ, −⟨γ⁻¹,β⟩u) leaves Wy + b unchanged; softmax is shift invariant so the "
    "bias-free LM head direction 𝟙γ⁻¹ᵀ is dead with zero directional Fisher information; constant "
    "key offsets leave attention unchanged (not so with rotary positions)."
)
HYPOTHESES = [
    "hypotheses of T1 (γᵢ ≠ 0)",
    "p = softmax(ℓ)",
    "keys without position-dependent rotation for (d)",
]


def softmax(logits: list[sp.Expr]) -> list[sp.Expr]:
    """softmax as exact SymPy expressions."""
    den = sp.Add(*[sp.exp(v) for v in logits])
    return [sp.exp(v) / den for v in logits]


def _ln(d: int) -> tuple[list[sp.Expr], list[sp.Expr], list[sp.Expr]]:
    g, b = S.vec("gamma", d), S.vec("beta", d)
    eps = sp.Symbol("epsilon", nonnegative=True)
    return S.layer_norm(S.vec("x", d), g, b, eps), g, b


Coefficient = Callable[[sp.Expr], sp.Expr]  # d -> c in δb = c·⟨γ⁻¹, β⟩·u (c = −1 in the theorem)


def _minus_one(d: sp.Expr) -> sp.Expr:
    return sp.Integer(-1)


def _linear_steps(der: Derivation, with_bias: bool, coef: Coefficient = _minus_one) -> None:
    d = sp.Symbol("d", integer=True, positive=True)
    i = sp.Symbol("i", integer=True)
    x, g, b = sp.IndexedBase("x"), sp.IndexedBase("gamma"), sp.IndexedBase("beta")
    s, u = sp.Symbol("s", positive=True), sp.Symbol("u_r")
    y = S.layer_norm_d(lambda q: x[q], lambda q: g[q], lambda q: b[q], i, d, scale=s)
    db = coef(d) * u * sp.Sum(b[i] / g[i], (i, 1, d)) if with_bias else 0
    der.zero(
        "linear consumer, symbolic d",
        "Row r of the change: Σᵢ (u_r/γᵢ) yᵢ + δb_r = u_r⟨γ⁻¹, y − β⟩ = 0 (T1).",
        sp.Sum(u * y / g[i], (i, 1, d)) + db,
        latex=r"\sum_{i=1}^d \frac{u_r}{\gamma_i}y_i + \delta b_r = 0,\quad \delta b_r = "
        + (r"-u_r\langle\gamma^{-1},\beta\rangle" if with_bias else "0"),
    )

    def change(dd: int) -> sp.Matrix:
        y2, g2, b2 = _ln(dd)
        uvec = sp.Matrix(sp.symbols("u_1:3", real=True))
        dw = uvec * sp.Matrix(S.inverse(g2)).T
        dbv = coef(sp.Integer(dd)) * S.dot(S.inverse(g2), b2) * uvec if with_bias else sp.zeros(2, 1)
        return dw * sp.Matrix(y2) + dbv

    der.family(
        "linear consumer, concrete d",
        "δW y + δb = 0 for d = 2..8 with a 2-output consumer, x, γ, β, ε, u symbolic (exact normaliser).",
        r"\delta W\,y + \delta b = u\gamma^{-1\top}y - \langle\gamma^{-1},\beta\rangle u = 0",
        [(f"d={dd}", lambda dd=dd: change(dd)) for dd in range(2, 9)],
    )


def _softmax_steps(der: Derivation, direction: str) -> None:
    c = sp.Symbol("c", real=True)

    def shift(n: int) -> sp.Matrix:
        ell = S.vec("l", n)
        return sp.Matrix(softmax([v + c for v in ell])) - sp.Matrix(softmax(ell))

    der.family(
        "softmax shift invariance",
        "softmax(ℓ + c𝟙) = softmax(ℓ) for V = 2..6 logits, c symbolic.",
        r"\mathrm{softmax}(\ell + c\mathbb 1) = \mathrm{softmax}(\ell)",
        [(f"V={n}", lambda n=n: shift(n)) for n in range(2, 7)],
    )

    def lm_head(dd: int, vocab: int) -> tuple[sp.Matrix, sp.Matrix]:
        y, g, b = _ln(dd)
        t = sp.Symbol("t", real=True)
        w = sp.Matrix(vocab, dd, lambda r, q: sp.Symbol(f"W_{r + 1}{q + 1}", real=True))
        uvec = sp.ones(vocab, 1) if direction == "ones" else sp.Matrix([1] + [0] * (vocab - 1))
        logits = (w + t * uvec * sp.Matrix(S.inverse(g)).T) * sp.Matrix(y)
        jac = logits.diff(t)
        return jac, uvec * S.dot(S.inverse(g), b)

    der.family(
        "logit Jacobian along δW = uγ⁻¹ᵀ",
        "d/dt of (W + t·uγ⁻¹ᵀ)y is u⟨γ⁻¹, y⟩ = ⟨γ⁻¹, β⟩u for d = 2..5, V = 3 (exact normaliser): "
        "for u = 𝟙 a constant shift of every logit.",
        r"J_\delta = \tfrac{\partial}{\partial t}(W + "
        r"t\,u\gamma^{-1\top})y = \langle\gamma^{-1},\beta\rangle\,u",
        [(f"d={dd}", lambda dd=dd: (lambda jr: jr[0] - jr[1])(lm_head(dd, 3))) for dd in range(2, 6)],
    )

    def fisher(n: int) -> sp.Expr:
        ell = S.vec("l", n)
        p = sp.Matrix(softmax(ell))
        k = sp.Symbol("kappa", real=True)  # ⟨γ⁻¹, β⟩
        uvec = sp.ones(n, 1) if direction == "ones" else sp.Matrix([1] + [0] * (n - 1))
        jac = k * uvec
        return (jac.T * (sp.diag(*p) - p * p.T) * jac)[0, 0]

    der.family(
        "directional Fisher",
        "J_δᵀ(diag p − ppᵀ)J_δ = κ²·uᵀ(diag p − ppᵀ)u with κ = ⟨γ⁻¹,β⟩; for u = 𝟙 it is κ²(Σp − (Σp)²) = 0 "
        "for every input (V = 2..5), so its expectation, the Fisher information along δ, is 0.",
        r"J_\delta^\top(\mathrm{diag}\,p - pp^\top)J_\delta = 0",
        [(f"V={n}", lambda n=n: fisher(n)) for n in range(2, 6)],
    )


def _attention_steps(der: Derivation, rotary: bool) -> None:
    def attention_change(n_keys: int) -> sp.Matrix:
        q = sp.Matrix(sp.symbols("q_1:3", real=True))
        c = sp.Matrix(sp.symbols("c_1:3", real=True))
        theta = sp.Symbol("theta", real=True)
        keys = [sp.Matrix(sp.symbols(f"k{j}_1:3", real=True)) for j in range(n_keys)]

        def rot(pos: int) -> sp.Matrix:
            a = pos * theta
            return sp.Matrix([[sp.cos(a), -sp.sin(a)], [sp.sin(a), sp.cos(a)]]) if rotary else sp.eye(2)

        qpos = n_keys  # the query sits after the keys

        def scores(offset: sp.Matrix) -> list[sp.Expr]:
            return [((rot(qpos) * q).T * (rot(j) * (keys[j] + offset)))[0, 0] for j in range(n_keys)]

        return sp.Matrix(softmax(scores(c))) - sp.Matrix(softmax(scores(sp.zeros(2, 1))))

    der.family(
        "constant key offset" + (" with rotary positions" if rotary else ""),
        "softmax_j(qᵀ(k_j + c)) = softmax_j(qᵀk_j): the offset adds qᵀc to every score "
        + ("(here keys and query are rotated by position-dependent angles)" if rotary else "")
        + "; n = 2..4 keys, head dimension 2.",
        r"\mathrm{softmax}_j\big(q^\top R_{m}^\top R_j (k_j + c)\big) "
        r"= \mathrm{softmax}_j\big(q^\top R_m^\top R_j k_j\big)"
        if rotary
        else r"\mathrm{softmax}_j\big(q^\top(k_j + c)\big) = \mathrm{softmax}_j\big(q^\top k_j\big)",
        [(f"n={n}", lambda n=n: attention_change(n)) for n in range(2, 5)],
    )


COVERAGE = (
    "linear consumer proved for symbolic d (opaque normaliser) and d = 2..8 (exact normaliser); softmax shift, "
    "LM-head Jacobian and directional Fisher for V = 2..6 logits, d = 2..5; attention offsets for n = 2..4 keys "
    "(head dimension 2); the consumer is the exact softmax (SymPy exp)"
)


def _derive(variant: str, coef: Coefficient = _minus_one) -> ProofResult:
    controls = {
        "theorem": None,
        "rotary": "rotary position rotation of keys and query",
        "lm-head-e1": "LM-head direction u = e₁ (not ∝ 𝟙) with ⟨γ⁻¹,β⟩ ≠ 0",
        "no-bias-correction": "linear consumer without δb = −⟨γ⁻¹,β⟩u",
    }
    der = Derivation(
        THEOREM,
        TITLE,
        STATEMENT,
        HYPOTHESES,
        COVERAGE,
        control=controls[variant],
    )
    if variant in ("theorem", "no-bias-correction"):
        _linear_steps(der, with_bias=variant == "theorem", coef=coef)
    if variant in ("theorem", "lm-head-e1"):
        _softmax_steps(der, "ones" if variant == "theorem" else "e1")
    if variant in ("theorem", "rotary"):
        _attention_steps(der, rotary=variant == "rotary")
    if variant == "theorem":
        der.note(
            "Attention link: keys K = W_K y + b_K; along δW_K = uγ⁻¹ᵀ every key gains u⟨γ⁻¹, y⟩ = u⟨γ⁻¹, β⟩ "
            "(the linear-consumer step with δb = 0), one vector "
            "c for all positions, so the constant-offset step "
            "applies."
        )
    return der.result()


def prove() -> ProofResult:
    """Derive T7."""
    return _derive("theorem")


CONTROLS = {
    "rotary-keys": lambda: _derive("rotary"),
    "lm-head-direction-e1": lambda: _derive("lm-head-e1"),
    "no-bias-correction": lambda: _derive("no-bias-correction"),
}

MUTANTS = [
    Mutant(
        "bias-sign",
        "wrong constant",
        "(δW, δb) = (uγ⁻¹ᵀ, +⟨γ⁻¹,β⟩u) leaves Wy + b unchanged (sign of δb flipped)",
        lambda: _derive("theorem", lambda d: sp.Integer(1)),
    ),
    Mutant(
        "false-above-d8",
        "false above the concrete range",
        "δb = −(1 + Π_{k=2}^{8}(d − k))·⟨γ⁻¹,β⟩u (right for d = 2..8 only)",
        lambda: _derive("theorem", lambda d: -(1 + S.vanishing_on(d, 2, 8))),
    ),
    Mutant(
        "no-rotation-dropped",
        "dropped hypothesis",
        "constant key offsets leave attention unchanged also with rotary positions (hypothesis dropped)",
        lambda: _derive("rotary"),
    ),
]
