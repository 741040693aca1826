"""Kernel-checked Coq + MathComp proofs of T1–T9: compile, read the axioms, reject the false variants.

Each theorem lives in one file of ``proofs/coq/`` whose definition and statement sit between markers::

    (* BEGIN-DEF name *) ... (* END-DEF name *)
    (* BEGIN-STATEMENT name *) ... (* END-STATEMENT name *)

The proof scripts are never edited.  For a *negative control* (the false variant named by issue 12: RMSNorm
for T1/T2/T8, the uncentred moment for T4, ...) and for a *statement mutant* (a wrong constant, a statement
false only above a small range, a dropped hypothesis) this module copies the file into a temporary folder,
replaces one region and runs ``coqc``.  The variant counts as rejected only when ``coqc`` fails *inside a
proof* (between ``Proof.`` and ``Qed.``): an error outside a proof (a syntax error, an unknown name in the
replaced region) means the variant is malformed, and it is reported as not rejected so that the tests fail.

A theorem is ``"proved"`` when its file compiles, its last command ``Print Assumptions <main>.`` reports
"Closed under the global context" (no axiom: MathComp's real closed fields are an interface, and nothing here
assumes excluded middle or functional extensionality), and every control and mutant is rejected.  Without
``coqc`` the status is ``"not run"`` with the reason and the install command — never a silent pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

COQ_DIR = Path(__file__).resolve().parent / "coq"

#: Theorem id -> file name in ``proofs/coq/``.
COQ_THEOREMS: dict[str, str] = {
    "T1": "t01_hyperplane.v",
    "T2": "t02_kernel.v",
    "T3": "t03_minimality.v",
    "T4": "t04_uncentred.v",
    "T5": "t05_rms_absence.v",
    "T6": "t06_zero_scales.v",
    "T7": "t07_read_side.v",
    "T8": "t08_write_side.v",
    "T9": "t09_groups.v",
}

#: Theorem id -> the name given to ``Print Assumptions`` at the end of its file.
MAIN_THEOREMS: dict[str, str] = {
    "T1": "hyperplane",
    "T2": "kernel",
    "T3": "minimality",
    "T4": "uncentred",
    "T5": "rms_absence",
    "T6": "zero_scale",
    "T7": "read_side",
    "T8": "invariance",
    "T9": "groups",
}

#: Axioms a theorem may use, with the reason; empty for every theorem (the proofs are axiom-free).
ALLOWED_AXIOMS: dict[str, tuple[str, ...]] = {tid: () for tid in COQ_THEOREMS}

INSTALL_HINT = (
    "install Coq 8.16 and MathComp: apt-get install -y coq libcoq-mathcomp-ssreflect "
    "libcoq-mathcomp-algebra libcoq-mathcomp-algebra-tactics (Debian/Ubuntu, as root)"
)

# MathComp's notations override nat_scope's and its structures declare ambiguous coercion paths; both warnings
# are expected and would drown the real messages.
COQC_FLAGS = ("-q", "-w", "-notation-overridden,-ambiguous-paths")

_CLOSED = "Closed under the global context"


@dataclass(frozen=True)
class Variant:
    """A false variant of a theorem: replace region ``region`` (``"DEF name"`` or ``"STATEMENT name"``).

    ``why_false`` says in words why the variant is false (a counterexample), so a reader can judge that a
    rejection is deserved and not an accident of the proof script.
    """

    name: str
    region: str
    replacement: str
    why_false: str


class VariantResult(NamedTuple):
    """Outcome of one control or mutant: ``rejected`` is True only for a failure inside a proof."""

    name: str
    rejected: bool
    message: str


@dataclass
class CoqResult:
    """Outcome of :func:`check_theorem` for one theorem.

    ``status``: ``"proved"`` | ``"failed"`` | ``"not run"``; ``reason`` explains anything but ``"proved"``.
    ``seconds``: wall-clock time of the main file's ``coqc`` run.  ``lines``: lines of the ``.v`` file.
    """

    status: str
    file: str
    main_theorem: str
    assumptions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    controls: list[VariantResult] = field(default_factory=list)
    mutants: list[VariantResult] = field(default_factory=list)
    reason: str = ""
    lines: int = 0


# --------------------------------------------------------------------------------------------------------------
# Negative controls and statement mutants, as region replacements (data, not code).
# --------------------------------------------------------------------------------------------------------------

_T1_STMT = "Theorem hyperplane eps g b x :\n  {hyp}\n  \\sum_{rng} ({y} - b 0 i) {op} g 0 i = {rhs}.\n"


def _t1(hyp: str = "(forall i, g 0 i != 0) ->", rng: str = "i", y: str = "layer eps g b x 0 i", op: str = "/",
        rhs: str = "0") -> str:
    return _T1_STMT.format(hyp=hyp, rng=rng, y=y, op=op, rhs=rhs)


_T2_STMT = "Theorem kernel eps g b X :\n  {hyp}\n  cov (outs eps g b X) *m {v} = {rhs}.\n"


def _t2(hyp: str = "(forall i, g 0 i != 0) ->", v: str = "(ginv g)^T", rhs: str = "0") -> str:
    return _T2_STMT.format(hyp=hyp, v=v, rhs=rhs)


_T8_STMT = (
    "Theorem invariance eps g b x t (h : 'rV[R]_n) (W dW : 'M[R]_(n, d)) :\n  {hyp}\n"
    "  layer eps g b (x + t *: {one}) = {rhs} /\\\n"
    "  layer eps g b (x + h *m (W + dW)) = layer eps g b (x + h *m W).\n"
)


def _t8(hyp: str = "(forall l j j', dW l j = dW l j') ->", one: str = "const_mx 1",
        rhs: str = "layer eps g b x") -> str:
    return _T8_STMT.format(hyp=hyp, one=one, rhs=rhs)


_T4_STMT = (
    "Theorem uncentred eps g b X :\n  {hyp}\n  moment (outs eps g b X) *m (ginv g)^T = {rhs}.\n"
)


def _t4(hyp: str = "(forall i, g 0 i != 0) ->", rhs: str = "predicted (outs eps g b X) g b") -> str:
    return _T4_STMT.format(hyp=hyp, rhs=rhs)


_T6_STMT = (
    "Theorem zero_scale eps g b X i :\n  {hyp}\n  cov (outs eps g b X) *m {v} = {rhs} /\\\n"
    "  ~ (exists v : 'rV[R]_d, forall j : 'I_d, {inv}).\n"
)
_E_I = "(delta_mx 0 i : 'rV[R]_d)^T"


def _t6(hyp: str = "g 0 i = 0 ->", v: str = _E_I, rhs: str = "0", inv: str = "g 0 j * v 0 j = 1") -> str:
    return _T6_STMT.format(hyp=hyp, v=v, rhs=rhs, inv=inv)


_T7_STMT = (
    "Theorem read_side eps g b x (W : 'M[R]_(d, m)) (c u : 'rV[R]_m) t :\n"
    "  {hyp}\n"
    "  [/\\ layer eps g b x *m (W + t *: ((ginv g)^T *m u)) + {bias}\n"
    "        = layer eps g b x *m W + c,\n"
    "      {hyp2}\n"
    "        layer eps g b x *m (W + t *: ((ginv g)^T *m u)) = layer eps g b x *m W &\n"
    "      forall (T : Type) (F : 'rV[R]_m -> T),\n"
    "        (forall l s, F (l + s *: const_mx 1) = F l) ->\n"
    "        F (layer eps g b x *m (W + t *: ((ginv g)^T *m {one})))\n"
    "          = F (layer eps g b x *m W)].\n"
)


def _t7(hyp: str = "(forall i, g 0 i != 0) ->", bias: str = "(c - (t * offset g b) *: u)",
        hyp2: str = "offset g b = 0 ->", one: str = "const_mx 1") -> str:
    return _T7_STMT.format(hyp=hyp, bias=bias, hyp2=hyp2, one=one)


_T9_STMT = (
    "Theorem groups eps g b w X (r : 'I_G -> 'I_d) :\n"
    "  (forall i, g 0 i != 0) ->\n"
    "  {hw}\n"
    "  {hr}\n"
    "  [/\\ vgrp g *m cov (outs (gnorm eps g b) X) = 0,\n"
    "      ({rank} <= \\rank (kermx (cov (outs (gnorm eps g b) X))))%N,\n"
    "      ({one} : 'rV[R]_d) *m cov (outs (stc eps g b) X) = 0 &\n"
    "      (\\row_i {gdir} : 'rV[R]_d) *m cov (outs (gemma eps w b) X) = 0].\n"
)


def _t9(hw: str = "(forall i, 1 + w 0 i != 0) ->", hr: str = "(forall h, grp (r h) = h) ->", rank: str = "G",
        one: str = "const_mx 1", gdir: str = "(1 + w 0 i)^-1") -> str:
    return _T9_STMT.format(hw=hw, hr=hr, rank=rank, one=one, gdir=gdir)


_T3_STMT = (
    "Theorem minimality eps g b X :\n"
    "  {hg}\n"
    "  {span}\n"
    "  [/\\ cmx d *m cmx d = cmx d,\n"
    "      (0 < d)%N -> \\rank (cmx d) = {rank} &\n"
    "      forall v, cov (ymx eps g b X) *m v^T = 0 <-> exists a, v = a *: {dir}].\n"
)
_T3_SPAN = "(forall u : 'rV[R]_d, cmx N *m zmx eps X *m u^T = 0 -> exists a, u = a *: const_mx 1) ->"


def _t3(hg: str = "(forall i, g 0 i != 0) ->", span: str = _T3_SPAN, rank: str = "d.-1",
        dir: str = "ginv g") -> str:
    return _T3_STMT.format(hg=hg, span=span, rank=rank, dir=dir)


_T5_STMT = (
    "Theorem rms_absence eps g b v :\n"
    "  {he}{hg}{hv}\n"
    "  0 < ({w} *m cov2 (layer eps g b {x1}) (layer eps g b {x2}) *m {w}^T) 0 0.\n"
)
_T5_FIRST3 = "(\\row_i (if (i < 3)%N then v 0 i else 0) : 'rV[R]_d)"


def _t5(he: str = "0 <= eps -> ", hg: str = "(forall i, g 0 i != 0) -> ", hv: str = "v != 0 ->",
        x1: str = "(witness g v)", x2: str = "(- witness g v)", w: str = "v") -> str:
    return _T5_STMT.format(he=he, hg=hg, hv=hv, x1=x1, x2=x2, w=w)


_RMS_NORMALISE = "Definition normalise eps x : 'rV[R]_d :=\n  \\row_i (x 0 i / Num.sqrt (msq x + eps)).\n"

CONTROLS: dict[str, list[Variant]] = {
    "T5": [
        Variant(
            "LayerNorm instead of RMSNorm",
            "DEF norm",
            "Definition normalise eps x : 'rV[R]_d :=\n  \\row_i ((x 0 i - mean x) / Num.sqrt (var x + eps)).\n",
            "T2: v = gamma^-1 is in the kernel of every LayerNorm covariance, so v^T C v = 0 for this pair",
        ),
    ],
    "T3": [
        Variant(
            "RMSNorm instead of LayerNorm",
            "DEF norm",
            _RMS_NORMALISE,
            "d = N = 2, gamma = 1, beta = 0, eps = 0, inputs (1, 0), (1, 1): RMSNorm outputs (sqrt 2, 0), (1, 1) "
            "have <1, y> = sqrt 2 and 2, so the centred outputs are not orthogonal to gamma^-1 and C gamma^-1 != 0",
        ),
    ],
    "T9": [
        Variant(
            "scaling before centring within each group (gamma^-1 claim)",
            "DEF groupnorm",
            "Definition gnorm eps g b x : 'rV[R]_d :=\n"
            "  let s := \\row_j (g 0 j * x 0 j) in\n"
            "  \\row_i ((s 0 i - gmean s (grp i)) / Num.sqrt (gvar s (grp i) + eps) + b 0 i).\n",
            "G = 1 is scale-then-centre, whose kernel is the all-ones vector: d = 2, gamma = (1, 2), "
            "inputs (1, 0), (0, 1) give outputs (1, -1), (-1, 1) and V C != 0",
        ),
        Variant(
            "centring before scaling (LayerNorm) for the all-ones claim",
            "DEF scale_centre",
            "Definition stc eps g b x : 'rV[R]_d :=\n"
            "  \\row_i (g 0 i * ((x 0 i - mean x) / Num.sqrt (var x + eps)) + b 0 i).\n",
            "LayerNorm's kernel is gamma^-1: d = 2, gamma = (1, 2), inputs (1, -1), (-1, 1) give "
            "y = (1, -2), (-1, 2) and 1^T C != 0",
        ),
    ],
    "T7": [
        Variant(
            "RMSNorm instead of LayerNorm",
            "DEF norm",
            _RMS_NORMALISE,
            "RMSNorm outputs leave the hyperplane: d = m = 1, gamma = 1, beta = 0, x = 1, eps = 0, u = t = 1, "
            "W = c = 0: y = 1 and y (W + gamma^-T u) = 1 != 0",
        ),
    ],
    "T6": [
        Variant(
            "gamma applied to the input before normalising",
            "DEF layer",
            "Definition layer eps g b x : 'rV[R]_d :=\n"
            "  \\row_i (normalise eps (\\row_j (g 0 j * x 0 j)) 0 i + b 0 i).\n",
            "d = 2, gamma = (0, 1), beta = 0, eps = 0, inputs (0, 1), (0, -1): outputs (-1, 1), (1, -1), "
            "so the dead coordinate varies and C e_0 = (1, -1) != 0",
        ),
    ],
    "T4": [
        Variant(
            "uncentred moment claimed to annihilate gamma^-1 (T2's statement for E[yy^T])",
            "DEF predicted",
            "Definition predicted (Y : 'I_N -> 'rV[R]_d) g b : 'cV[R]_d := 0.\n",
            "d = 1, N = 1, gamma = 1, beta = 1: y = 1 and M gamma^-1 = 1 != 0",
        ),
        Variant(
            "centred covariance in place of the uncentred moment",
            "DEF moment",
            "Definition moment (Y : 'I_N -> 'rV[R]_d) : 'M[R]_d :=\n"
            "  N%:R^-1 *: \\sum_k (Y k - smean Y)^T *m (Y k - smean Y).\n",
            "T2: C gamma^-1 = 0, while <gamma^-1, beta> m = 1 for d = 1, N = 1, gamma = beta = 1",
        ),
    ],
    "T8": [
        Variant(
            "RMSNorm instead of LayerNorm",
            "DEF norm",
            _RMS_NORMALISE,
            "RMSNorm(x + t 1) != RMSNorm(x): x = (1, -1), t = 1, eps = 0 gives (1, 0)/sqrt(2) * 2 vs (1, -1)",
        ),
    ],
    "T1": [
        Variant(
            "RMSNorm instead of LayerNorm",
            "DEF norm",
            _RMS_NORMALISE,
            "RMSNorm does not centre: for x = (1, 1), gamma = 1, beta = 0 the sum is 2/sqrt(1 + eps) != 0",
        ),
    ],
    "T2": [
        Variant(
            "RMSNorm instead of LayerNorm",
            "DEF norm",
            _RMS_NORMALISE,
            "T5: RMSNorm outputs of the two inputs (1, 0), (0, 1) with gamma = 1 have C gamma^-1 != 0",
        ),
        Variant(
            "uncentred second moment instead of the covariance",
            "DEF cov",
            "Definition cov (Y : 'I_N -> 'rV[R]_d) : 'M[R]_d :=\n  N%:R^-1 *: \\sum_k (Y k)^T *m (Y k).\n",
            "T4: E[yy^T] gamma^-1 = <gamma^-1, beta> E[y], non-zero for beta = gamma = 1, N = 1",
        ),
    ],
}

MUTANTS: dict[str, list[Variant]] = {
    "T5": [
        Variant(
            "wrong constant: second input 2 x1 instead of -x1",
            "STATEMENT rms_absence",
            _t5(x2="(2%:R *: witness g v)"),
            "eps = 0: RMSNorm is scale-invariant, RMSNorm(2 x1) = RMSNorm(x1), so C = 0",
        ),
        Variant(
            "false above d = 3: the quadratic form of v truncated to its first three coordinates",
            "STATEMENT rms_absence",
            _t5(w=_T5_FIRST3),
            "v itself for d <= 3; d = 4, v = e_3: the truncated vector is 0 and its quadratic form is 0",
        ),
        Variant(
            "dropped hypothesis eps >= 0",
            "STATEMENT rms_absence",
            _t5(he=""),
            "eps = -mean(x1^2): the normaliser is sqrt 0 = 0, both outputs are beta (MathComp's x / 0 = 0), C = 0",
        ),
        Variant(
            "dropped hypothesis gamma_i != 0",
            "STATEMENT rms_absence",
            _t5(hg=""),
            "gamma = 0: both outputs are beta, C = 0",
        ),
        Variant(
            "dropped hypothesis v != 0",
            "STATEMENT rms_absence",
            _t5(hv=""),
            "v = 0: v^T C v = 0",
        ),
    ],
    "T3": [
        Variant(
            "wrong constant: rank d - 2",
            "STATEMENT minimality",
            _t3(rank="d.-2"),
            "d = 2: P = [[1/2, -1/2], [-1/2, 1/2]] has rank 1, not 0",
        ),
        Variant(
            "false above d = 3: rank min(d - 1, 2)",
            "STATEMENT minimality",
            _t3(rank="minn d.-1 2"),
            "equals d - 1 for d <= 3; d = 4: rank P = 3 != 2",
        ),
        Variant(
            "wrong direction: kernel spanned by the all-ones vector",
            "STATEMENT minimality",
            _t3(dir="const_mx 1"),
            "d = N = 2, gamma = (1, 2), eps = 0, inputs (1, -1), (-1, 1): the sample is generic and "
            "ker C = span((1, 1/2)), which does not contain (1, 1)",
        ),
        Variant(
            "dropped hypothesis: the centred normalised inputs span 1^perp",
            "STATEMENT minimality",
            _t3(span=""),
            "N = 0, d = 2: C = 0 and its kernel is the whole plane, not a line",
        ),
        Variant(
            "dropped hypothesis gamma_i != 0",
            "STATEMENT minimality",
            _t3(hg=""),
            "d = N = 2, gamma = (0, 1), inputs (1, -1), (-1, 1): y = (0, -1), (0, 1), ker C = span(e_0) "
            "while gamma^-1 := (0, 1)",
        ),
    ],
    "T9": [
        Variant(
            "wrong constant: Gemma's offset 0 (direction w^-1 instead of (1 + w)^-1)",
            "STATEMENT groups",
            _t9(gdir="(w 0 i)^-1"),
            "d = 2, w = (1, 2) (gamma = (2, 3)), eps = 0, inputs (1, 0), (0, 1): y - beta = +-(2, -3), "
            "C = (2, -3)^T (2, -3) and C w^-1 = (2, -3)^T / 2 != 0",
        ),
        Variant(
            "false above G = 3: kernel dimension G + 1 once G >= 4",
            "STATEMENT groups",
            _t9(rank="G + (3 < G)"),
            "the proved bound for G <= 3; G = d = 4 singleton groups: ker C has dimension at most d = 4 < 5",
        ),
        Variant(
            "dropped hypothesis: every group non-empty",
            "STATEMENT groups",
            _t9(hr=""),
            "G = 2, d = 1, every channel in group 0: ker C has dimension at most 1 < 2",
        ),
        Variant(
            "wrong direction: scale-then-centre claimed to have gamma^-1 in its kernel",
            "STATEMENT groups",
            _t9(one="\\row_i (g 0 i)^-1"),
            "d = 2, gamma = (1, 2), eps = 0, inputs (1, 0), (0, 1): outputs (1, -1), (-1, 1), "
            "C gamma^-1 is a non-zero multiple of (1, -1)",
        ),
        Variant(
            "dropped hypothesis 1 + w_i != 0",
            "STATEMENT groups",
            _t9(hw=""),
            "d = 2, w = (-1, 0), eps = 0, beta = 0, inputs (1, 0), (0, 1): y = (0, -1), (0, 1), "
            "(1 + w)^-1 := (0, 1) and C (0, 1) = (0, 1) != 0",
        ),
    ],
    "T7": [
        Variant(
            "wrong constant: bias correction with the wrong sign",
            "STATEMENT read_side",
            _t7(bias="(c + (t * offset g b) *: u)"),
            "d = m = 1, gamma = beta = 1, t = u = 1, W = c = 0: y = 1, left side 1 + 1 = 2, right side 0",
        ),
        Variant(
            "dropped hypothesis <gamma^-1, beta> = 0 for the bias-free layer",
            "STATEMENT read_side",
            _t7(hyp2=""),
            "d = m = 1, gamma = beta = 1, t = u = 1, W = 0: y = 1, y (W + 1) = 1 != 0",
        ),
        Variant(
            "false above d = 3: <gamma^-1, beta> over the first three coordinates only",
            "STATEMENT read_side",
            _t7(hyp2="\\sum_(i < d | (i < 3)%N) b 0 i / g 0 i = 0 ->"),
            "the full offset for d <= 3; d = 4, m = 1, x = 0, gamma = 1, beta = e_4, t = u = 1, W = 0: "
            "y = e_4 and y gamma^-T u = 1 != 0",
        ),
        Variant(
            "consumer invariant under constant shifts, but along an arbitrary direction u",
            "STATEMENT read_side",
            _t7(one="u"),
            "F(l) = l_0 - l_1 is shift-invariant; m = 2, u = (1, 0), d = 1, gamma = beta = 1, t = 1, W = 0: "
            "the logits move by (1, 0) and F by 1",
        ),
        Variant(
            "dropped hypothesis gamma_i != 0",
            "STATEMENT read_side",
            _t7(hyp=""),
            "d = 2, gamma = (0, 1), beta = 0, x = (1, 0), eps = 0, m = 1, u = t = 1, W = c = 0: y = (0, -2), "
            "gamma^-1 := (0, 1), y gamma^-T u = -2 while the bias correction is 0",
        ),
    ],
    "T6": [
        Variant(
            "wrong constant: eigenvalue 1 instead of 0",
            "STATEMENT zero_scale",
            _t6(rhs=_E_I),
            "N = 0 gives C = 0 while e_i != 0",
        ),
        Variant(
            "wrong direction: the all-ones vector",
            "STATEMENT zero_scale",
            _t6(v="(const_mx 1 : 'rV[R]_d)^T"),
            "d = 2, gamma = (0, 1), beta = 0, inputs (1, -1), (-1, 1), eps = 0: y = (0, -1), (0, 1), C 1 = (0, 1)",
        ),
        Variant(
            "false above d = 3: gamma^-1 undefined only if a zero is among the first three",
            "STATEMENT zero_scale",
            _t6(inv="(j < 3)%N -> g 0 j * v 0 j = 1"),
            "for d <= 3 every i < 3 so no v exists; d = 4, gamma = (1, 1, 1, 0), i = 3: v = (1, 1, 1, 0) exists",
        ),
        Variant(
            "dropped hypothesis gamma_i = 0",
            "STATEMENT zero_scale",
            _t6(hyp=""),
            "d = 1, gamma = 1: v = 1 inverts gamma",
        ),
    ],
    "T4": [
        Variant(
            "wrong constant: factor 2",
            "STATEMENT uncentred",
            _t4(rhs="2%:R *: predicted (outs eps g b X) g b"),
            "d = 1, N = 1, gamma = 1, beta = 1: y = 1, M gamma^-1 = 1, twice the prediction is 2",
        ),
        Variant(
            "wrong constant: <1, beta> instead of <gamma^-1, beta>",
            "STATEMENT uncentred",
            _t4(rhs="(\\sum_i b 0 i) *: (smean (outs eps g b X))^T"),
            "d = 1, N = 1, gamma = 2, beta = 1: y = 1, M gamma^-1 = 1/2 but <1, beta> m = 1",
        ),
        Variant(
            "false above d = 3: <gamma^-1, beta> over the first three coordinates",
            "STATEMENT uncentred",
            _t4(rhs="(\\sum_(i < d | (i < 3)%N) b 0 i / g 0 i) *: (smean (outs eps g b X))^T"),
            "the full inner product for d <= 3; d = 4, N = 1, x = 0, gamma = 1, beta = e_4: "
            "y = beta, M gamma^-1 = beta, the truncated prediction is 0",
        ),
        Variant(
            "dropped hypothesis gamma_i != 0",
            "STATEMENT uncentred",
            _t4(hyp=""),
            "d = 2, N = 1, gamma = (0, 1), beta = 0, x = (1, 0), eps = 0: y = (0, -2), gamma^-1 := (0, 1), "
            "M gamma^-1 = (0, 4) but the prediction is 0",
        ),
    ],
    "T8": [
        Variant(
            "wrong constant: the output moves by t",
            "STATEMENT invariance",
            _t8(rhs="layer eps g b x + t *: const_mx 1"),
            "d = 1, t = 1: both layer outputs equal beta, the right-hand side is beta + 1",
        ),
        Variant(
            "wrong direction: shift along gamma",
            "STATEMENT invariance",
            _t8(one="g"),
            "d = 2, gamma = (1, 2), beta = 0, x = 0, eps = 0, t = 1: LN(gamma) = (-1, 2) != LN(0) = 0",
        ),
        Variant(
            "false above d = 3: shift of the first three coordinates only",
            "STATEMENT invariance",
            _t8(one="\\row_i (if (i < 3)%N then 1 else 0)"),
            "the all-ones vector for d <= 3; d = 4, x = 0, gamma = 1, beta = 0, eps = 0, t = 1: "
            "LN((1, 1, 1, 0)) = (1, 1, 1, -3)/sqrt(3) != 0",
        ),
        Variant(
            "dropped hypothesis: rows of dW constant",
            "STATEMENT invariance",
            _t8(hyp=""),
            "d = 2, n = 1, h = 1, W = 0, dW = (1, 0), x = 0, gamma = 1, beta = 0, eps = 0: LN((1, 0)) = (1, -1) != 0",
        ),
    ],
    "T2": [
        Variant(
            "wrong constant: eigenvalue 1 instead of 0",
            "STATEMENT kernel",
            _t2(rhs="(ginv g)^T"),
            "N = 0 gives C = 0 while (gamma^-1)^T != 0 (d >= 1); for d = 0 both sides are empty",
        ),
        Variant(
            "wrong direction: the all-ones vector",
            "STATEMENT kernel",
            _t2(v="(const_mx 1 : 'rV[R]_d)^T"),
            "d = 2, gamma = (1, 2), beta = 0, inputs (1, -1) and (-1, 1): y = (1, -2), (-1, 2), C 1 != 0",
        ),
        Variant(
            "false above d = 3: gamma^-1 truncated to the first three coordinates",
            "STATEMENT kernel",
            _t2(v="(\\row_i (if (i < 3)%N then (g 0 i)^-1 else 0))^T"),
            "equals gamma^-1 for d <= 3; d = 4, gamma = 1, inputs +-(1, 0, 0, -1): C (1, 1, 1, 0) != 0",
        ),
        Variant(
            "dropped hypothesis gamma_i != 0",
            "STATEMENT kernel",
            _t2(hyp=""),
            "gamma = (0, 1), beta = 0, inputs (1, -1), (-1, 1): gamma^-1 := (0, 1), C (0, 1) = (0, 1) != 0",
        ),
    ],
    "T1": [
        Variant(
            "wrong constant: beta counted twice",
            "STATEMENT hyperplane",
            _t1(y="layer eps g b x 0 i - b 0 i"),
            "d = 1, gamma = 1, beta = 1: the sum is z - 1 = -1",
        ),
        Variant(
            "wrong constant: right-hand side 1",
            "STATEMENT hyperplane",
            _t1(rhs="1"),
            "the sum is 0 for every input, never 1",
        ),
        Variant(
            "false above d = 3: only the first three coordinates",
            "STATEMENT hyperplane",
            _t1(rng="(i < d | (i < 3)%N)"),
            "true for d <= 3 (all coordinates); d = 4, x = (1, 0, 0, 0), gamma = 1, beta = 0: "
            "the first three centred entries sum to 3/4 / sqrt(var + eps) != 0",
        ),
        Variant(
            "dropped hypothesis gamma_i != 0",
            "STATEMENT hyperplane",
            _t1(hyp=""),
            "MathComp's 0^-1 = 0: gamma = (0, 1), x = (1, 0), eps = 0 gives z = (1, -1) and a sum of -1",
        ),
        Variant(
            "gamma instead of gamma^-1",
            "STATEMENT hyperplane",
            _t1(op="*"),
            "gamma = (2, 1), x = (1, 0), eps = 0: sum of gamma_i^2 z_i = 4 - 1 = 3",
        ),
    ],
}


# --------------------------------------------------------------------------------------------------------------
# Running coqc
# --------------------------------------------------------------------------------------------------------------


def coq_available() -> bool:
    """True when ``coqc`` is on PATH and MathComp's algebra library can be loaded."""
    if shutil.which("coqc") is None:
        return False
    return _mathcomp_missing() is None


def _mathcomp_missing() -> str | None:
    """None when ``From mathcomp Require Import all_algebra`` compiles; else the error text."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.v"
        probe.write_text("From mathcomp Require Import all_ssreflect all_algebra.\n")
        try:
            proc = subprocess.run(["coqc", *COQC_FLAGS, probe.name], cwd=tmp, capture_output=True, text=True,
                                  timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()


def coq_versions() -> dict[str, str]:
    """Versions of the tools: ``{"coq": "8.16.1", "mathcomp": "1.15.0"}``; ``"missing"`` when absent.

    MathComp 1.x has no version constant, so its version is read from the package manager (dpkg) or, failing
    that, from opam; ``"unknown"`` when neither knows.
    """
    out = {"coq": "missing", "mathcomp": "missing"}
    if shutil.which("coqc") is None:
        return out
    proc = subprocess.run(["coqc", "--version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"version\s+(\S+)", proc.stdout)
    out["coq"] = match.group(1) if match else "unknown"
    out["mathcomp"] = _mathcomp_version()
    return out


def _mathcomp_version() -> str:
    queries = (
        ["dpkg-query", "-W", "-f=${Version}", "libcoq-mathcomp-algebra"],
        ["opam", "show", "-f", "version", "coq-mathcomp-algebra"],
    )
    for cmd in queries:
        if shutil.which(cmd[0]) is None:
            continue
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            # Debian versions read "1.15.0-1+b4": keep the upstream part.
            return proc.stdout.strip().split("-")[0]
    return "missing" if _mathcomp_missing() is not None else "unknown"


class _Run(NamedTuple):
    ok: bool
    output: str  # stdout then stderr, for error messages
    seconds: float
    timed_out: bool
    stdout: str = ""  # Print output only: warnings go to stderr and must not be read as axiom names


def _coqc(path: Path, timeout: float) -> _Run:
    start = time.perf_counter()
    try:
        proc = subprocess.run(["coqc", *COQC_FLAGS, path.name], cwd=path.parent, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return _Run(False, f"coqc timed out after {timeout:g} s", time.perf_counter() - start, True)
    return _Run(proc.returncode == 0, proc.stdout + proc.stderr, time.perf_counter() - start, False, proc.stdout)


def parse_assumptions(output: str) -> list[str] | None:
    """Axiom names that ``Print Assumptions`` reported; ``[]`` when closed; None when no report was found."""
    if _CLOSED in output:
        return []
    idx = output.find("Axioms:")
    if idx < 0:
        return None
    # Coq prints each axiom as "name : type" or "name" then "  : type" on the next lines (indented).
    names = []
    for line in output[idx + len("Axioms:"):].splitlines():
        if line.strip() and not line[0].isspace():
            names.append(line.split()[0].rstrip(":"))
    return names


def _regions(text: str) -> dict[str, tuple[int, int]]:
    """Region name ("DEF norm") -> (start, end) offsets of its body, between the two marker comments."""
    found: dict[str, tuple[int, int]] = {}
    for m in re.finditer(r"\(\* BEGIN-(DEF|STATEMENT) (\S+) \*\)\n", text):
        key = f"{m.group(1)} {m.group(2)}"
        end = text.find(f"(* END-{key} *)", m.end())
        if end < 0:
            raise ValueError(f"region {key!r} has no END marker")
        if key in found:
            raise ValueError(f"region {key!r} appears twice")
        found[key] = (m.end(), end)
    return found


def apply_variant(text: str, variant: Variant) -> str:
    """The file text with ``variant.region`` replaced; raises ValueError when the region is missing."""
    regions = _regions(text)
    if variant.region not in regions:
        raise ValueError(f"variant {variant.name!r}: no region {variant.region!r} (have {sorted(regions)})")
    start, end = regions[variant.region]
    if text[start:end] == variant.replacement:
        raise ValueError(f"variant {variant.name!r} does not change region {variant.region!r}")
    return text[:start] + variant.replacement + text[end:]


def _proof_spans(text: str) -> list[tuple[int, int]]:
    """1-based line spans [Proof., Qed.] of every proof in the file."""
    spans, start = [], 0
    for no, line in enumerate(text.splitlines(), start=1):
        if re.search(r"(^|\s)Proof\.", line):
            start = no
        if start and re.search(r"(^|\s)(Qed|Defined)\.", line):
            spans.append((start, no))
            start = 0
    return spans


def classify_failure(text: str, output: str) -> tuple[bool, str]:
    """(True, message) when coqc's first error lies inside a proof and is not a syntax error."""
    m = re.search(r'File "[^"]*", line (\d+), characters [^:]*:\s*\n?Error:\s*(.*?)(?:\n\n|\Z)', output, re.S)
    if m is None:
        return False, "no located error in coqc output: " + output.strip()[-300:]
    line, message = int(m.group(1)), " ".join(m.group(2).split())
    snippet = text.splitlines()[line - 1].strip() if 0 < line <= len(text.splitlines()) else ""
    message = f"line {line} `{snippet}`: {message}"
    if "Syntax error" in message:
        return False, "malformed variant (syntax error): " + message
    if not any(a <= line <= b for a, b in _proof_spans(text)):
        return False, "malformed variant (error outside a proof): " + message
    return True, message


def run_variant(tid: str, variant: Variant, *, timeout: float = 300) -> VariantResult:
    """Compile the theorem's file with one region replaced; rejected means a failure inside a proof."""
    name = COQ_THEOREMS[tid]
    text = apply_variant((COQ_DIR / name).read_text(), variant)
    with tempfile.TemporaryDirectory(prefix="deadir-coq-") as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        run = _coqc(path, timeout)
    if run.ok:
        return VariantResult(variant.name, False, "ACCEPTED by coqc (a false variant checked!)")
    if run.timed_out:
        return VariantResult(variant.name, False, run.output)
    rejected, message = classify_failure(text, run.output)
    return VariantResult(variant.name, rejected, message)


def check_theorem(tid: str, *, timeout: float = 300, variants: bool = True, jobs: int = 1) -> CoqResult:
    """Compile theorem ``tid``'s file, read its axioms, and (``variants``) run its controls and mutants.

    Raises KeyError for an unknown theorem id.  ``timeout`` (seconds) bounds each ``coqc`` run; ``jobs`` runs
    that many variant compilations at once (each is an independent ``coqc`` process in its own folder).
    """
    if tid not in COQ_THEOREMS:
        raise KeyError(f"unknown theorem id {tid!r}; known: {sorted(COQ_THEOREMS)}")
    name, main = COQ_THEOREMS[tid], MAIN_THEOREMS[tid]
    source = COQ_DIR / name
    text = source.read_text()
    result = CoqResult(status="not run", file=f"proofs/coq/{name}", main_theorem=main,
                       lines=len(text.splitlines()))
    if shutil.which("coqc") is None:
        result.reason = "coqc not found on PATH; " + INSTALL_HINT
        return result
    missing = _mathcomp_missing()
    if missing is not None:
        result.reason = f"MathComp cannot be loaded ({missing[-200:]}); " + INSTALL_HINT
        return result
    if not re.search(rf"Print Assumptions {re.escape(main)}\.\s*\Z", text):
        result.status, result.reason = "failed", f"{name} does not end with `Print Assumptions {main}.`"
        return result
    with tempfile.TemporaryDirectory(prefix="deadir-coq-") as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        run = _coqc(path, timeout)
    result.seconds = run.seconds
    if not run.ok:
        result.status, result.reason = "failed", run.output.strip()[-2000:]
        return result
    assumptions = parse_assumptions(run.stdout)
    if assumptions is None:
        result.status, result.reason = "failed", "no Print Assumptions report in coqc output"
        return result
    result.assumptions = assumptions
    extra = sorted(set(assumptions) - set(ALLOWED_AXIOMS.get(tid, ())))
    if extra:
        result.status, result.reason = "failed", f"unjustified axioms: {extra}"
        return result
    result.status = "proved"
    if variants:
        controls, mutants = CONTROLS.get(tid, []), MUTANTS.get(tid, [])
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            done = list(pool.map(lambda v: run_variant(tid, v, timeout=timeout), [*controls, *mutants]))
        result.controls, result.mutants = done[:len(controls)], done[len(controls):]
        bad = [v.name for v in (*result.controls, *result.mutants) if not v.rejected]
        if bad:
            result.status, result.reason = "failed", f"false variants not rejected: {bad}"
    return result


def check_all(tids: Iterable[str] | None = None, *, timeout: float = 300, variants: bool = True,
              jobs: int = 1) -> dict[str, CoqResult]:
    """:func:`check_theorem` for every theorem (or those in ``tids``), keyed by theorem id."""
    return {tid: check_theorem(tid, timeout=timeout, variants=variants, jobs=jobs) for tid in (tids or COQ_THEOREMS)}


def mutant_counts(results: dict[str, CoqResult]) -> tuple[int, int]:
    """(rejected, total) statement mutants over ``results``: the "statement mutants rejected: N/N" line."""
    rejected = sum(v.rejected for r in results.values() for v in r.mutants)
    return rejected, sum(len(r.mutants) for r in results.values())


def main() -> int:
    """Print a one-line verdict per theorem; exit status 1 unless every theorem is proved."""
    import sys

    versions = coq_versions()
    print(f"coq {versions['coq']}, mathcomp {versions['mathcomp']}")
    results = check_all(sys.argv[1:] or None, jobs=int(os.environ.get("DEADIR_COQ_JOBS", "1")))
    for tid, res in results.items():
        ctl = sum(v.rejected for v in res.controls)
        mut = sum(v.rejected for v in res.mutants)
        print(f"{tid} {res.status:8s} {res.file} ({res.lines} lines, {res.seconds:.1f} s) axioms={res.assumptions} "
              f"controls {ctl}/{len(res.controls)} mutants {mut}/{len(res.mutants)} {res.reason}")
        for v in (*res.controls, *res.mutants):
            print(f"    {'rejected' if v.rejected else 'NOT REJECTED'}: {v.name}: {v.message[:160]}")
    rejected, total = mutant_counts(results)
    print(f"statement mutants rejected: {rejected}/{total}")
    return 0 if all(r.status == "proved" for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
