"""T10 in rigorous floating point: Gappa bounds |Σᵢ(ŷᵢ − βᵢ)/γᵢ| for a LayerNorm row, Coq re-checks it.

What is certified. For a format F (binary32, binary16, bfloat16: round to nearest even, gradual
underflow) and a dimension d, the script :func:`script_text` writes the operation sequence of a
LayerNorm forward in F, every operation rounded to F:

    s₁ = x₁,  s_k = ∘(s_{k−1} + x_k)         (recursive summation)
    μ̂ = ∘(s_d / d)                           (the computed mean)
    cᵢ = ∘(xᵢ − μ̂),  ẑᵢ = ∘(cᵢ · r̂)          (subtract, scale)
    pᵢ = ∘(γᵢ · ẑᵢ),  ŷᵢ = ∘(pᵢ + βᵢ)         (multiply by γ, add β)

and asks Gappa for an enclosure of T = Σᵢ(ŷᵢ − βᵢ)/γᵢ, the division and the sum taken exactly, in
the reals. In exact arithmetic T = 0 (T1). Gappa's enclosure is rigorous: every rounding error is
bounded from the enclosure of its argument (half an ulp of the largest magnitude, subnormals
included), products of errors are kept, nothing is first order. The scale r̂ is an input (any
value the kernel computes in the stated range), because the bound must hold for every scale
the kernel's 1/√(σ̂² + ε) produces, however it is computed.

Hypotheses (written into every script and certificate; :data:`HYPOTHESES`): xᵢ, γᵢ, βᵢ, r̂ are
numbers of F; |xᵢ| ≤ 1; 0 ≤ r̂ ≤ 1; 1/4 ≤ |γᵢ| ≤ 1 (either sign); |βᵢ| ≤ 1. F is Gappa's
``float<p, emin, ne>``, which has no overflow; the hypotheses give |s_k| ≤ k(1+u)^k and
|cᵢ|, |ẑᵢ|, |pᵢ|, |ŷᵢ| ≤ 4, far below F's largest finite number, so IEEE overflow cannot occur and
F is the IEEE format (a paper argument).

Why this box. It lies inside the hypotheses of the library's derivation with mean_ratio ρ = 1:
σ² = mean(x²) − μ² ≤ 1, so r̂·σ ≤ 1 (the library's r̂ ≤ 1/σ), and r̂|μ| ≤ 1 (the library's
r̂|μ| ≤ ρ, which is all its derivation uses of ρ ≥ |μ|/σ); κ = max|γ|/min|γ| ≤ 4, |βᵢ/γᵢ| ≤ 4.
A box (a product of intervals) can contain only rows with r̂·max|xᵢ| ≤ 1, i.e. every standardised
entry |ẑᵢ| ≤ 2 — interval reasoning cannot use r̂ ≤ 1/σ for a row with one large entry and the
rest small; such rows are not covered by the certificate. Floating point is invariant under
scaling by powers of two away from underflow and overflow (x → 2ʲx, r̂ → 2⁻ʲr̂ leaves every
computed ẑ, ŷ unchanged), so the statement also covers |xᵢ| ≤ 2ʲ, r̂ ≤ 2⁻ʲ — that scaling remark
is on paper, not in the certificate.

Comparison with the library. :func:`deadir.bound.kernel_error_bound` bounds |⟨v, ŷ − β⟩|, v =
γ⁻¹/‖γ⁻¹‖, i.e. |T|/‖γ⁻¹‖; its ``residual_raw`` (= residual·‖γ⁻¹‖) bounds |T| itself and grows with
S_β = Σ|βᵢ/γᵢ| only. Over the box its largest value is at |γᵢ| = 1/4, |βᵢ| = 1 (S_β = 4d), with
ρ = 1: :func:`library_bound`. Since Gappa's enclosure is the supremum over the same box, the
library's tolerance must not be below it (``library_ok``).

Negative controls. (1) The bound halved is given to Gappa as the goal: Gappa must fail to prove it.
(2) In Coq, the certificate with the goal interval halved must be rejected by ``coqc``.

Coq. ``gappa -Bcoq`` writes a proof script over Flocq and the Gappa library; its rewriting hints
appear as hypotheses, which :func:`coq_certificate` turns into lemmas proved by ``field`` (so no
hint is trusted), and it appends ``deadir_certified : hypotheses -> enclosure`` and
``Print Assumptions deadir_certified``. Allowed axioms (:data:`ALLOWED_AXIOMS`): the three of Coq's
standard real numbers and excluded middle (to turn Gappa's ``hypotheses ∧ ¬goal → False`` into
``hypotheses → goal``).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")

#: Largest d checked per format (every d from 2 up to it).
D_MAX: dict[str, int] = {"float32": 16, "float16": 8, "bfloat16": 8}

#: The cases whose certificate CI re-checks with coqc (coqc takes minutes from d = 8 on; the full grid
#: is re-checked by ``python -m proofs.gappa_check`` and DEADIR_GAPPA_FULL=1). Gappa itself runs the full grid.
CI_GRID: dict[str, tuple[int, ...]] = {"float32": (2, 3, 4), "float16": (2, 3, 4), "bfloat16": (2, 3, 4)}

#: Gappa's name of each format: precision p (implicit bit included), exponent of the smallest subnormal.
GAPPA_FORMAT: dict[str, str] = {
    "float32": "float<ieee_32,ne>",  # = float<24,-149,ne>
    "float16": "float<11,-24,ne>",
    "bfloat16": "float<8,-133,ne>",
}

#: Largest finite number of each format (for the no-overflow remark).
MAX_FINITE: dict[str, float] = {"float32": 3.4028234663852886e38, "float16": 65504.0, "bfloat16": 3.3895313892515355e38}

# The box (exact dyadics; they appear verbatim in the scripts).
X_MAX = Fraction(1)  # |xᵢ| ≤ X_MAX
SCALE_RANGE = (Fraction(0), Fraction(1))  # r̂ ∈ [0, 1]
GAMMA_ABS = (Fraction(1, 4), Fraction(1))  # |γᵢ| ∈ [1/4, 1]
BETA_MAX = Fraction(1)  # |βᵢ| ≤ BETA_MAX

HYPOTHESES: dict[str, str] = {
    "format": "xᵢ, γᵢ, βᵢ and r̂ are numbers of the format; every operation rounds to nearest even",
    "x": f"|xᵢ| ≤ {X_MAX} for every i",
    "scale": f"r̂ ∈ [{SCALE_RANGE[0]}, {SCALE_RANGE[1]}] (any scale the kernel computes)",
    "gamma": f"|γᵢ| ∈ [{GAMMA_ABS[0]}, {GAMMA_ABS[1]}], either sign",
    "beta": f"|βᵢ| ≤ {BETA_MAX}",
    "overflow": "none (paper argument): Gappa's float<p,emin> has no overflow; the hypotheses give |s_k| <= k(1+u)^k "
    "and |c_i|, |z_i|, |p_i|, |y_i| <= 4, far below the format's largest finite number",
    "library_mapping": "kernel_error_bound(γ = [1/4]*d, β = [1]*d, mean_ratio = 1).residual_raw (S_β = 4d)",
}

#: Axioms deadir_certified may depend on, with why.
ALLOWED_AXIOMS: dict[str, str] = {
    "ClassicalDedekindReals.sig_forall_dec": "Coq's standard real numbers",
    "ClassicalDedekindReals.sig_not_dec": "Coq's standard real numbers",
    "FunctionalExtensionality.functional_extensionality_dep": "Coq's standard real numbers",
    "classic": "excluded middle, to state hypotheses -> enclosure from Gappa's (hypotheses /\\ ~enclosure) -> False",
}

INSTALL_HINT = "install Gappa and its Coq library: apt-get install -y gappa libcoq-flocq libcoq-gappa coq"

GENERATED_DIR = Path(__file__).resolve().parent / "gappa" / "generated"

_RESULT = re.compile(r"T in \[(-?\d+)(?:b(-?\d+))?(?: \{[^}]*\})?, (-?\d+)(?:b(-?\d+))?(?: \{[^}]*\})?\]")


class GappaError(RuntimeError):
    """Gappa or Coq could not be run, or printed something this module cannot read."""


@dataclass
class GappaResult:
    """The outcome of one (dtype, d) case.

    Attributes:
        dtype, d: the case.
        hypotheses: the box (:data:`HYPOTHESES`), as written into the script.
        status: "proved" (Gappa certified a bound), "failed" (it did not) or "not run" (no gappa).
        reason: why, when not "proved".
        certified_bound: sup |T| Gappa proved (float, rounded up), inf when none.
        certified_bound_dyadic: the exact bound as Gappa printed it, "m b e" = m·2^e.
        tightened_rejected: Gappa failed to prove |T| ≤ certified_bound/2 (negative control).
        coq_status: "proved" | "failed" | "not run".
        coq_seconds: wall time of coqc (nan when not run).
        coq_axioms: the axioms Print Assumptions listed.
        coq_tampered_rejected: coqc rejected the certificate with its interval halved (None: not run).
        seconds: wall time of the Gappa runs.
        library_bound: kernel_error_bound(...).residual_raw at the worst point of the box.
        library_ok: library_bound ≥ certified_bound.
    """

    dtype: str
    d: int
    hypotheses: dict[str, str]
    status: str = "not run"
    reason: str = ""
    certified_bound: float = math.inf
    certified_bound_dyadic: str = ""
    tightened_rejected: bool = False
    coq_status: str = "not run"
    coq_seconds: float = math.nan
    coq_axioms: list[str] = field(default_factory=list)
    coq_tampered_rejected: bool | None = None
    seconds: float = 0.0
    library_bound: float = math.nan
    library_ok: bool = False

    @property
    def ratio(self) -> float:
        """library_bound / certified_bound (≥ 1 when the library is safe)."""
        return self.library_bound / self.certified_bound if self.certified_bound > 0 else math.inf


def gappa_available() -> bool:
    """True when the ``gappa`` executable is on PATH."""
    return shutil.which("gappa") is not None


def coq_available() -> bool:
    """True when ``coqc`` is on PATH and the Gappa Coq library (libcoq-gappa) is installed."""
    coqc = shutil.which("coqc")
    if coqc is None:
        return False
    where = subprocess.run([coqc, "-where"], capture_output=True, text=True, timeout=60).stdout.strip()
    return (Path(where) / "user-contrib" / "Gappa" / "Gappa_library.vo").exists()


def gappa_versions() -> dict[str, str]:
    """Versions of gappa, Flocq and Coq ("not installed" for a missing one)."""
    out = {"gappa": "not installed", "flocq": "not installed", "coq": "not installed"}
    if gappa_available():
        text = subprocess.run(["gappa", "--version"], capture_output=True, text=True, timeout=60)
        out["gappa"] = (text.stdout + text.stderr).strip().splitlines()[0]
    if shutil.which("coqc"):
        coq_text = subprocess.run(["coqc", "--version"], capture_output=True, text=True, timeout=60).stdout
        out["coq"] = coq_text.strip().splitlines()[0]
        with tempfile.TemporaryDirectory() as tmp:
            v = Path(tmp) / "flocq_version.v"
            v.write_text("Require Import Flocq.Version NArith.\nOpen Scope N_scope.\nEval compute in Flocq_version.\n")
            res = subprocess.run(["coqc", "-q", str(v)], capture_output=True, text=True, timeout=120, cwd=tmp)
            m = re.search(r"=\s*([0-9]+)", res.stdout)
            if res.returncode == 0 and m:
                # Flocq_version is a number such as 40100 for Flocq 4.1.0
                n = int(m.group(1))
                out["flocq"] = f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return out


def _dyadic(x: Fraction) -> str:
    """x as a Gappa number: an integer or m b e (m·2^e)."""
    if x.denominator == 1:
        return str(x.numerator)
    e = x.denominator.bit_length() - 1
    if x.denominator != 1 << e:
        raise ValueError(f"{x} is not dyadic")
    return f"{x.numerator}b-{e}"


def hypotheses(beta_max: Fraction = BETA_MAX) -> dict[str, str]:
    """:data:`HYPOTHESES` with the bound on |βᵢ| set to ``beta_max``."""
    out = dict(HYPOTHESES)
    out["beta"] = f"|βᵢ| ≤ {beta_max}"
    out["library_mapping"] = (
        f"kernel_error_bound(γ = [1/4]*d, β = [{beta_max}]*d, mean_ratio = 1).residual_raw (S_β = {4 * beta_max}d)"
    )
    return out


def script_text(dtype: str, d: int, goal: str = "T in ?", *, beta_max: Fraction = BETA_MAX) -> str:
    """The Gappa script of one case; ``goal`` is the conclusion (``T in ?`` asks Gappa for the bound).

    ``beta_max`` replaces the hypothesis |βᵢ| ≤ 1 (0: the β-free comparison).

    Raises:
        ValueError: unknown dtype or d < 2.
    """
    if dtype not in GAPPA_FORMAT:
        raise ValueError(f"dtype: {dtype!r} is not one of {DTYPES}")
    if d < 2:
        raise ValueError(f"d: LayerNorm needs d >= 2, got {d}")
    idx = range(1, d + 1)
    lines = [
        f"# deadir T10: rigorous bound on T = sum_i (y_i - b_i)/g_i for a LayerNorm row, {dtype}, d = {d}.",
        "# Hypotheses: " + "; ".join(f"{k}: {v}" for k, v in hypotheses(beta_max).items() if k != "library_mapping"),
        f"@rnd = {GAPPA_FORMAT[dtype]};",
        "# inputs are numbers of the format",
    ]
    lines += [f"x{i} = rnd(X{i}_); g{i} = rnd(G{i}_); b{i} = rnd(B{i}_);" for i in idx]
    lines += ["r = rnd(R_);", "# exact sum (a real)"]
    lines.append("S = " + " + ".join(f"x{i}" for i in idx) + ";")
    lines.append("# the kernel: recursive summation, mean, subtract, scale, multiply by gamma, add beta")
    lines.append("s2 rnd= x1 + x2;")
    lines += [f"s{k} rnd= s{k - 1} + x{k};" for k in range(3, d + 1)]
    lines.append(f"mh rnd= s{d} / {d};")
    lines += [f"c{i} rnd= x{i} - mh; z{i} rnd= c{i} * r; p{i} rnd= g{i} * z{i}; y{i} rnd= p{i} + b{i};" for i in idx]
    lines.append("# the quantity bounded: exact in the reals, zero in exact arithmetic")
    lines.append("T = " + " + ".join(f"(y{i} - b{i}) / g{i}" for i in idx) + ";")
    hyp: list[str] = []
    for i in idx:
        hyp += [
            f"x{i} in [{_dyadic(-X_MAX)}, {_dyadic(X_MAX)}]",
            f"|g{i}| in [{_dyadic(GAMMA_ABS[0])}, {_dyadic(GAMMA_ABS[1])}]",
            f"b{i} in [{_dyadic(-beta_max)}, {_dyadic(beta_max)}]",
        ]
    hyp.append(f"r in [{_dyadic(SCALE_RANGE[0])}, {_dyadic(SCALE_RANGE[1])}]")
    lines.append("{ " + "\n  /\\ ".join(hyp) + "\n  -> " + goal + " }")
    # Hints (each an identity Gappa checks by field normalisation and Coq re-proves by `field`):
    # T is the sum of the rounding errors, weighted, plus r times (S - d*mh), the centring error.
    nz = ", ".join(f"g{i} <> 0" for i in idx)
    terms = " + ".join(
        f"(y{i} - (p{i} + b{i})) / g{i} + (p{i} - g{i} * z{i}) / g{i} + (z{i} - c{i} * r) + r * (c{i} - (x{i} - mh))"
        for i in idx
    )
    lines.append("# T = sum of weighted rounding errors + r * (S - d * mh)")
    lines.append(f"T -> {terms} + r * (S - {d} * mh) {{ {nz} }};")
    errs = " + ".join([f"(s{k} - (s{k - 1} + x{k}))" for k in range(d, 2, -1)] + ["(s2 - (x1 + x2))"])
    lines.append("# the summation and division errors of the mean")
    lines.append(f"S - {d} * mh -> -({errs}) - {d} * (mh - s{d} / {d});")
    return "\n".join(lines) + "\n"


def _stem(dtype: str, d: int, beta_max: Fraction) -> str:
    return f"t10_{dtype}_d{d}" + ("" if beta_max == BETA_MAX else f"_beta{_dyadic(beta_max)}")


def generate(dtype: str, d: int, out_dir: Path, *, beta_max: Fraction = BETA_MAX) -> Path:
    """Write the Gappa script of (dtype, d) to ``out_dir/t10_<dtype>_d<d>.g`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{_stem(dtype, d, beta_max)}.g"
    path.write_text(script_text(dtype, d, beta_max=beta_max))
    path.chmod(0o644)
    return path


def parse_bound(output: str) -> tuple[Fraction, str]:
    """The bound max(|lo|, |hi|) of Gappa's ``T in [lo, hi]`` line, exactly, and its dyadic text.

    Raises:
        GappaError: no such line.
    """
    m = _RESULT.search(output)
    if m is None:
        raise GappaError(f"no 'T in [...]' result in Gappa's output: {output[-500:]!r}")
    lo = Fraction(int(m.group(1))) * Fraction(2) ** int(m.group(2) or 0)
    hi = Fraction(int(m.group(3))) * Fraction(2) ** int(m.group(4) or 0)
    bound = max(abs(lo), abs(hi))
    text = f"{m.group(3)}b{m.group(4) or 0}" if abs(hi) >= abs(lo) else f"{m.group(1).lstrip('-')}b{m.group(2) or 0}"
    return bound, text


def hint_warnings(gappa_stderr: str) -> list[str]:
    """Gappa's warnings that a rewriting hint is not an identity (Gappa only warns, and still uses it)."""
    return [line for line in gappa_stderr.splitlines() if "are not trivially equal" in line]


def _frac_up(x: Fraction) -> float:
    """The float nearest x, moved up when it is below x (a bound must stay a bound)."""
    f = float(x)
    return math.nextafter(f, math.inf) if Fraction(f) < x else f


def library_bound(dtype: str, d: int, beta_max: Fraction = BETA_MAX) -> float:
    """kernel_error_bound's bound on |T| at the box's worst point (|γᵢ| = 1/4, |βᵢ| = beta_max, ρ = 1)."""
    from deadir.bound import kernel_error_bound

    gamma = [float(GAMMA_ABS[0])] * d
    beta = [float(beta_max)] * d
    b = kernel_error_bound(gamma, dtype, d, beta=beta, mean_ratio=float(X_MAX * SCALE_RANGE[1]))
    return b.residual_raw


def coq_certificate(gappa_v: str, header: str = "") -> str:
    """Make Gappa's Coq script self-contained: prove its rewriting hypotheses, state the theorem.

    Every ``Hypothesis aN : E.`` (a rewriting hint) becomes a lemma proved by ``field`` (Gappa's
    integer constants ``Float1 n`` are IZR n); then ``deadir_certified : hypotheses -> enclosure``
    and ``Print Assumptions deadir_certified`` are appended.

    Raises:
        GappaError: the script does not have the shape Gappa 1.4 writes.
    """
    gappa_v = _repair_placeholders(gappa_v)
    text, n = re.subn(
        r"Hypothesis (a\d+) : (.*?)\.\n",
        lambda m: f"Lemma {m.group(1)} : {m.group(2)}.\n"
        "Proof. intros; unfold Float1; field; repeat split; assumption. Qed.\n",
        gappa_v,
    )
    m = re.search(r"Definition s1 := \((s\d+) /\\ (s\d+)\)\.", text)
    if m is None or "Lemma l1 : s1 -> False." not in text:
        raise GappaError("Gappa's Coq script has no 'Lemma l1 : s1 -> False' over 's1 := (H /\\ ~G)'")
    hyp, neg = m.groups()
    m2 = re.search(rf"Definition {neg} := \(not (.*?)\)\.\n", text)
    if m2 is None:
        raise GappaError(f"Gappa's Coq script: {neg} is not a negated goal")
    goal = m2.group(1)
    tail = (
        f"Theorem deadir_certified : {hyp} -> {goal}.\n"
        "Proof. intro h. apply Classical_Prop.NNPP. intro hn. exact (l1 (conj h hn)). Qed.\n"
        "End Generated_by_Gappa.\n"
        "Print Assumptions deadir_certified.\n"
    )
    if text.count("End Generated_by_Gappa.") != 1:
        raise GappaError("Gappa's Coq script: expected one section Generated_by_Gappa")
    text = text.replace("End Generated_by_Gappa.\n", tail)
    head = f"(* deadir T10 certificate: {n} rewriting hints re-proved by field.\n{header}*)\n"
    return head + "Require Import Reals Field Classical_Prop.\n" + text


def _repair_placeholders(text: str) -> str:
    """Fill Gappa 1.4.1's ``$p`` placeholders: its Coq back-end prints ``$p`` for the 10th and later
    hypothesis of a rewriting hint (``refine (b1 h0 … h8 $p $p …)``, from d = 10 on). They stand for the
    next hypotheses h9, h10, … in order; coqc checks the result, so a wrong fill fails, it cannot prove more.
    """

    def fill(m: re.Match[str]) -> str:
        words = m.group(0).split(" ")
        n = sum(1 for w in words if re.fullmatch(r"h\d+", w))
        out = []
        for w in words:
            if w.startswith("$p"):
                out.append(f"h{n}" + w[2:])
                n += 1
            else:
                out.append(w)
        return " ".join(out)

    return re.sub(r"refine \(b\d+(?: h\d+)*(?: \$p)+\)", fill, text)


def tamper_certificate(cert: str) -> str:
    """The certificate with the goal interval halved (negative control for coqc).

    The goal interval is the one in ``deadir_certified``'s conclusion ``BND _T iK``; its bounds
    ``Float2 m e`` become ``Float2 m (e-1)``.

    Raises:
        GappaError: the goal interval cannot be found.
    """
    m = re.search(r"Theorem deadir_certified : s\d+ -> (p\d+)\.", cert)
    if m is None:
        raise GappaError("no deadir_certified theorem")
    p = m.group(1)
    m2 = re.search(rf"Notation {p} := \(BND _T (i\d+)\)\.", cert)
    if m2 is None:
        raise GappaError(f"goal {p} is not BND _T i")
    i = m2.group(1)
    m3 = re.search(rf"Definition {i} := makepairF (f\d+) (f\d+)\.", cert)
    if m3 is None:
        raise GappaError(f"interval {i} not found")
    lo, hi = m3.groups()
    new_lo, new_hi = lo + "_half", hi + "_half"
    defs = ""
    for f in (lo, hi):
        m4 = re.search(rf"Definition {f} := Float2 \((-?\d+)\) \((-?\d+)\)\.", cert)
        if m4 is None:
            raise GappaError(f"float {f} not found")
        defs += f"Definition {f}_half := Float2 ({m4.group(1)}) ({int(m4.group(2)) - 1}).\n"
    old = f"Definition {i} := makepairF {lo} {hi}.\n"
    return cert.replace(old, defs + f"Definition {i} := makepairF {new_lo} {new_hi}.\n")


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s", time.monotonic() - t0
    return res.returncode, res.stdout, res.stderr, time.monotonic() - t0


def _coqc(v: Path, timeout: float) -> tuple[int, str, float]:
    rc, out, err, sec = _run(["coqc", "-q", v.name], v.parent, timeout)
    return rc, out + err, sec


def _axioms(coq_output: str) -> list[str]:
    if "Closed under the global context" in coq_output:
        return []
    m = re.search(r"Axioms:\n(.*)", coq_output, re.S)
    if m is None:
        return ["<unreadable Print Assumptions output>"]
    return [line.split(" :")[0].strip() for line in m.group(1).splitlines() if line and not line.startswith(" ")]


def gappa_proves(
    dtype: str, d: int, bound: Fraction, *, beta_max: Fraction = BETA_MAX, timeout: float = 600
) -> bool | None:
    """Whether Gappa proves |T| ≤ ``bound`` for (dtype, d) (the hints of :func:`script_text`, no automatic bisection).

    Returns True (proved), False (Gappa ran and reported the goal not satisfied) or None (anything
    else: a syntax error, a crash, a timeout — never counted as a rejection).
    """
    with tempfile.TemporaryDirectory() as tmp:
        g = Path(tmp) / "goal.g"
        g.write_text(script_text(dtype, d, goal=f"|T| <= {_dyadic(bound)}", beta_max=beta_max))
        rc, _, err, _ = _run(["gappa", "-Eno-auto-dichotomy", g.name], Path(tmp), timeout)
    if rc == 0 and not hint_warnings(err):
        return True
    if rc != 0 and "some properties were not satisfied" in err:
        return False
    return None


def check_case(
    dtype: str,
    d: int,
    *,
    coq: bool = True,
    coq_tamper: bool = False,
    timeout: float = 120,
    write_to: Path | None = None,
    beta_max: Fraction = BETA_MAX,
) -> GappaResult:
    """Certify the bound of (dtype, d) with Gappa, run the negative control, re-check in Coq.

    Args:
        dtype: one of :data:`DTYPES`.
        d: feature dimension ≥ 2.
        coq: re-check the certificate with coqc.
        coq_tamper: also check that coqc rejects the certificate with its interval halved.
        timeout: seconds per gappa/coqc run.
        write_to: folder for the script (.g), the certificate (.v) and the coqc log; default none
            (a temporary folder).
        beta_max: the hypothesis |βᵢ| ≤ beta_max (default 1; 0 for the β-free comparison).

    Returns:
        GappaResult; status "not run" with :data:`INSTALL_HINT` when gappa is missing (never a pass).
    """
    res = GappaResult(dtype=dtype, d=d, hypotheses=hypotheses(beta_max))
    res.library_bound = library_bound(dtype, d, beta_max)
    if not gappa_available():
        res.reason = f"gappa not found on PATH; {INSTALL_HINT}"
        return res
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(write_to) if write_to is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        stem = _stem(dtype, d, beta_max)
        g = generate(dtype, d, work, beta_max=beta_max)
        rc, out, err, sec = _run(["gappa", "-Bcoq", g.name], work, timeout)
        res.seconds += sec
        if rc != 0:
            res.status, res.reason = "failed", f"gappa rc={rc}: {err[-400:]}"
            return res
        if hint_warnings(err):
            res.status, res.reason = "failed", f"a rewriting hint is not an identity: {hint_warnings(err)[0][:300]}"
            return res
        bound, text = parse_bound(err)
        res.status = "proved"
        res.certified_bound = _frac_up(bound)
        res.certified_bound_dyadic = text
        res.library_ok = res.library_bound >= res.certified_bound
        # negative control: half the bound must not be provable
        t_neg = time.monotonic()
        res.tightened_rejected = gappa_proves(dtype, d, bound / 2, beta_max=beta_max, timeout=timeout) is False
        res.seconds += time.monotonic() - t_neg
        if not coq:
            return res
        if not coq_available():
            res.reason = f"coqc or the Gappa Coq library is missing; {INSTALL_HINT}"
            return res
        header = f"   {dtype}, d = {d}, Gappa format {GAPPA_FORMAT[dtype]}.\n" + "".join(
            f"   {k}: {v}\n" for k, v in res.hypotheses.items()
        )
        cert = coq_certificate(out, header.replace("*)", "* )"))
        v = work / f"{stem}.v"
        v.write_text(cert)
        v.chmod(0o644)
        rc_c, log, sec_c = _coqc(v, timeout)
        res.coq_seconds = sec_c
        (work / f"{stem}.coqlog").write_text(log)
        res.coq_axioms = _axioms(log)
        bad = [a for a in res.coq_axioms if a not in ALLOWED_AXIOMS]
        if rc_c == 0 and not bad:
            res.coq_status = "proved"
        else:
            res.coq_status = "failed"
            res.reason = f"coqc rc={rc_c}, axioms outside the allowed set: {bad}; {log[-400:]}"
        if coq_tamper:
            tv = work / f"{stem}_tampered.v"
            tv.write_text(tamper_certificate(cert))
            rc_t, log_t, _ = _coqc(tv, timeout)
            # rejected inside a proof (a failed step), not for a syntax or name error
            low = log_t.lower()
            res.coq_tampered_rejected = rc_t != 0 and "syntax error" not in low and "was not found" not in low
    return res


def grid(full: bool = True) -> list[tuple[str, int]]:
    """The (dtype, d) cases: every d in 2..D_MAX[dtype] (``full``) or :data:`CI_GRID`."""
    if full:
        return [(dt, d) for dt in DTYPES for d in range(2, D_MAX[dt] + 1)]
    return [(dt, d) for dt in DTYPES for d in CI_GRID[dt]]


def check_all(
    cases: Iterable[tuple[str, int]] | None = None,
    *,
    coq: bool = True,
    coq_cases: Iterable[tuple[str, int]] | None = None,
    timeout: float = 3600,
    write_to: Path | None = None,
) -> list[GappaResult]:
    """:func:`check_case` over ``cases`` (default: the full grid).

    ``coq_cases`` limits the coqc re-check to those cases (default: every case when ``coq``;
    ``grid(full=False)`` is the CI subset, d = 2..4). coqc's tamper control runs at d = 2.
    """
    todo = grid() if cases is None else list(cases)
    with_coq = set(todo if coq_cases is None else coq_cases) if coq else set()
    out = []
    for dtype, d in todo:
        c = (dtype, d) in with_coq
        out.append(check_case(dtype, d, coq=c, coq_tamper=c and d == 2, timeout=timeout, write_to=write_to))
    return out


def table(results: Iterable[GappaResult]) -> str:
    """A Markdown table: dtype, d, certified, library, ratio, tightened rejected, Coq status and seconds."""
    rows = [
        "| dtype | d | certified bound on abs(T) | library bound | library/certified | tightened rejected "
        "| Coq | Coq s | Gappa s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.dtype} | {r.d} | {r.certified_bound:.6g} (`{r.certified_bound_dyadic}`) | {r.library_bound:.6g} "
            f"| {r.ratio:.3f} | {r.tightened_rejected} | {r.coq_status} | {r.coq_seconds:.1f} | {r.seconds:.1f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m proofs.gappa_check [--ci] [--no-coq] [--write]``: run the grid, print the table."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--ci", action="store_true", help="coqc re-checks only the CI subset (d = 2..4)")
    ap.add_argument("--no-coq", action="store_true", help="skip the coqc re-check")
    ap.add_argument("--write", action="store_true", help=f"keep scripts and certificates in {GENERATED_DIR}")
    args = ap.parse_args(argv)
    if not gappa_available():
        print(f"Gappa part NOT RUN: {INSTALL_HINT}")
        return 2
    results = check_all(
        grid(),
        coq=not args.no_coq,
        coq_cases=grid(full=False) if args.ci else None,
        write_to=GENERATED_DIR if args.write else None,
    )
    print(gappa_versions())
    print(table(results))
    ok = all(
        r.status == "proved" and r.tightened_rejected and r.library_ok and r.coq_status in ("proved", "not run")
        for r in results
    ) and all(
        r.coq_status == "proved" and (r.d != 2 or r.coq_tampered_rejected)
        for r in results
        if args.no_coq is False and (not args.ci or r.d in CI_GRID[r.dtype])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
