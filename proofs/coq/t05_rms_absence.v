(* T5 (RMSNorm has no dead direction).  For every v <> 0 there is an
   explicit pair of inputs whose RMSNorm outputs have v^T C v > 0, C the
   empirical centred covariance of the two outputs (T2's C with N = 2):
       x1 = gamma .* v,   x2 = -x1,
   with the real normaliser sqrt(mean x^2 + eps), every eps >= 0.  Indeed
   (y1 - y2) . v = 2 sum_i (gamma_i v_i)^2 / sqrt(mean x1^2 + eps) <> 0.

   Generality: any real closed field, every d, eps >= 0, beta; hypotheses
   gamma_i <> 0 for every i (else e_i is dead, T6) and v <> 0.
   The same witness fails for LayerNorm at v = gamma^-1 (negative control).

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative control: LayerNorm; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.algebra_tactics Require Import ring.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section RmsAbsence.
Variables (R : rcfType) (d : nat).
Implicit Types (x g b v : 'rV[R]_d) (eps : R).

Definition mean x : R := (\sum_i x 0 i) / d%:R.
Definition var x : R := (\sum_i (x 0 i - mean x) ^+ 2) / d%:R.
Definition msq x : R := (\sum_i x 0 i ^+ 2) / d%:R.

(* BEGIN-DEF norm *)
(* RMSNorm's normalised vector: divide by the real normaliser sqrt(mean x^2 + eps). *)
Definition normalise eps x : 'rV[R]_d :=
  \row_i (x 0 i / Num.sqrt (msq x + eps)).
(* END-DEF norm *)

Definition layer eps g b x : 'rV[R]_d := \row_i (g 0 i * normalise eps x 0 i + b 0 i).

(* The empirical covariance of a sample of two outputs (T2's C with N = 2). *)
Definition cov2 (y1 y2 : 'rV[R]_d) : 'M[R]_d :=
  let m := 2%:R^-1 *: (y1 + y2) in
  2%:R^-1 *: ((y1 - m)^T *m (y1 - m) + (y2 - m)^T *m (y2 - m)).

(* The witness pair: x1 = gamma .* v and x2 = -x1. *)
Definition witness g v : 'rV[R]_d := \row_i (g 0 i * v 0 i).

(* v (a^T a) v^T = (a . v)^2. *)
Lemma qform_row (a v : 'rV[R]_d) : (v *m (a^T *m a) *m v^T) 0 0 = ((a *m v^T) 0 0) ^+ 2.
Proof.
rewrite !mulmxA -(trmxK (v *m a^T)) trmx_mul trmxK -mulmxA mxE big_ord1.
by rewrite mxE expr2.
Qed.

(* v C v^T = ((y1 - m) . v)^2 / 2 + ((y2 - m) . v)^2 / 2. *)
Lemma qform_cov2 (y1 y2 v : 'rV[R]_d) (m := 2%:R^-1 *: (y1 + y2)) :
  (v *m cov2 y1 y2 *m v^T) 0 0
    = 2%:R^-1 * (((y1 - m) *m v^T) 0 0 ^+ 2 + ((y2 - m) *m v^T) 0 0 ^+ 2).
Proof.
by rewrite /cov2 -scalemxAr -scalemxAl mulmxDr mulmxDl [LHS]mxE [X in _ * X]mxE !qform_row.
Qed.

(* Two squares summing to zero are both zero. *)
Lemma sq2_pos (s t : R) : s - t != 0 -> 0 < s ^+ 2 + t ^+ 2.
Proof.
move=> st; rewrite lt0r addr_ge0 ?sqr_ge0 // andbT paddr_eq0 ?sqr_ge0 // !sqrf_eq0.
by apply: contra st => /andP [/eqP -> /eqP ->]; rewrite subrr.
Qed.

(* Some coordinate of a non-zero v is non-zero. *)
Lemma nz_coord v : v != 0 -> exists i, v 0 i != 0.
Proof.
move=> v0; case: (pickP (fun i => v 0 i != 0)) => [i vi|all0]; first by exists i.
by move: v0; rewrite -[v == 0]/(v == 0) (_ : v = 0) ?eqxx //; apply/rowP => i; move/negbFE/eqP: (all0 i) ->; rewrite mxE.
Qed.

(* sum_i (gamma_i v_i)^2 > 0 when no gamma_i is zero and v <> 0. *)
Lemma sumsq_pos g v : (forall i, g 0 i != 0) -> v != 0 -> 0 < \sum_i (g 0 i * v 0 i) ^+ 2.
Proof.
move=> g0 /nz_coord [i vi]; rewrite (bigD1 i) //= ltr_paddr ?sumr_ge0 // => [j _|].
  by rewrite sqr_ge0.
by rewrite lt0r sqr_ge0 sqrf_eq0 mulf_neq0 ?g0.
Qed.

(* The real normaliser of the witness is positive (eps >= 0). *)
Lemma norm_pos eps g v : 0 <= eps -> (forall i, g 0 i != 0) -> v != 0 ->
  0 < Num.sqrt (msq (witness g v) + eps).
Proof.
move=> e0 g0 v0; rewrite sqrtr_gt0 ltr_paddr // /msq divr_gt0 //.
  by rewrite (eq_bigr (fun i => (g 0 i * v 0 i) ^+ 2)) ?sumsq_pos // => i _; rewrite mxE.
by case/nz_coord: v0 => i _; rewrite ltr0n (leq_trans _ (ltn_ord i)).
Qed.

Lemma msqN x : msq (- x) = msq x.
Proof. by rewrite /msq; congr (_ / _); apply: eq_bigr => i _; rewrite mxE sqrrN. Qed.

(* (y1 - y2) . v = 2 sum_i (gamma_i v_i)^2 / r. *)
Lemma diff_dot eps g b v (x := witness g v) :
  ((layer eps g b x - layer eps g b (- x)) *m v^T) 0 0
    = \sum_i 2%:R * (g 0 i * v 0 i) ^+ 2 / Num.sqrt (msq x + eps).
Proof.
rewrite mxE; apply: eq_bigr => i _.
by rewrite !mxE msqN; ring.
Qed.

(* s1 - s2 = ((y1 - m) - (y2 - m)) . v = (y1 - y2) . v. *)
Lemma dot_sub (a c m v : 'rV[R]_d) :
  ((a - m) *m v^T) 0 0 - ((c - m) *m v^T) 0 0 = ((a - c) *m v^T) 0 0.
Proof.
by rewrite !mxE -sumrB; apply: eq_bigr => i _; rewrite !mxE; ring.
Qed.

(* BEGIN-STATEMENT rms_absence *)
Theorem rms_absence eps g b v :
  0 <= eps -> (forall i, g 0 i != 0) -> v != 0 ->
  0 < (v *m cov2 (layer eps g b (witness g v)) (layer eps g b (- witness g v)) *m v^T) 0 0.
(* END-STATEMENT rms_absence *)
Proof.
move=> e0 g0 v0; rewrite qform_cov2 mulr_gt0 ?invr_gt0 ?ltr0n // sq2_pos //.
rewrite dot_sub diff_dot -mulr_suml -mulr_sumr.
rewrite !mulf_neq0 // ?invr_eq0 ?pnatr_eq0 //.
  exact: lt0r_neq0 (sumsq_pos g0 v0).
exact: lt0r_neq0 (norm_pos e0 g0 v0).
Qed.

End RmsAbsence.

Print Assumptions rms_absence.
