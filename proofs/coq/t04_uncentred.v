(* T4 (centring matters).  For every finite sample of N inputs (rows of X),
   the uncentred second moment M = N^-1 sum_k y_k^T y_k of the LayerNorm
   outputs satisfies  M (gamma^-1)^T = <gamma^-1, beta> m^T,  m = N^-1 sum_k y_k
   the sample mean.  With v = gamma^-1 / |gamma^-1| both sides divide by
   |gamma^-1|: M v = <gamma^-1, beta> / |gamma^-1| E[y] ("up to normalisation").
   So gamma^-1 is a null direction of M only when <gamma^-1, beta> = 0 or the
   mean output is 0.

   Generality: any real closed field, every d, N, eps; hypothesis gamma_i <> 0.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative controls: the covariance's null claim made for the uncentred
   moment; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Uncentred.
Variables (R : rcfType) (d N : nat).
Implicit Types (x g b : 'rV[R]_d) (eps : R) (X : 'M[R]_(N, d)).

Definition mean x : R := (\sum_i x 0 i) / d%:R.
Definition var x : R := (\sum_i (x 0 i - mean x) ^+ 2) / d%:R.
Definition msq x : R := (\sum_i x 0 i ^+ 2) / d%:R.

(* BEGIN-DEF norm *)
(* LayerNorm's normalised vector: centre, then divide by sqrt(var + eps). *)
Definition normalise eps x : 'rV[R]_d :=
  \row_i ((x 0 i - mean x) / Num.sqrt (var x + eps)).
(* END-DEF norm *)

(* The elementwise affine map y = gamma .* z + beta. *)
Definition affine g b (z : 'rV[R]_d) : 'rV[R]_d := \row_i (g 0 i * z 0 i + b 0 i).

Definition layer eps g b x := affine g b (normalise eps x).

(* The centred entries sum to zero (d = 0: both sides are empty sums). *)
Lemma sum_centred x : \sum_i (x 0 i - mean x) = 0.
Proof.
rewrite sumrB sumr_const card_ord /mean -[_ *+ d]mulr_natr.
have [d0|d0] := eqVneq (d%:R : R) 0; last by rewrite divfK ?subrr.
have dz : d = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) d0.
rewrite d0 mulr0 subr0 big1 // => i _.
by exfalso; have := ltn_ord i; move: (nat_of_ord i) => k; rewrite dz.
Qed.

(* gamma_i * z_i / gamma_i = z_i: the scale cancels entrywise. *)
Lemma unscale (c z : R) : c != 0 -> c * z / c = z.
Proof. by move=> c0; rewrite mulrC mulKf. Qed.

Definition ginv g : 'rV[R]_d := \row_i (g 0 i)^-1.

Definition outs eps g b X (k : 'I_N) := layer eps g b (row k X).

Definition smean (Y : 'I_N -> 'rV[R]_d) : 'rV[R]_d := N%:R^-1 *: \sum_k Y k.

(* BEGIN-DEF moment *)
(* The uncentred second moment E[y y^T] of the sample. *)
Definition moment (Y : 'I_N -> 'rV[R]_d) : 'M[R]_d :=
  N%:R^-1 *: \sum_k (Y k)^T *m Y k.
(* END-DEF moment *)

(* BEGIN-DEF predicted *)
(* What T4 says M (gamma^-1)^T is: <gamma^-1, beta> times the sample mean. *)
Definition predicted (Y : 'I_N -> 'rV[R]_d) g b : 'cV[R]_d :=
  (\sum_i b 0 i / g 0 i) *: (smean Y)^T.
(* END-DEF predicted *)

(* T1: every output y has y . gamma^-1 = beta . gamma^-1. *)
Lemma out_dot eps g b x :
  (forall i, g 0 i != 0) -> layer eps g b x *m (ginv g)^T = b *m (ginv g)^T.
Proof.
move=> g0; apply/eqP; rewrite -subr_eq0 -mulmxBl; apply/eqP/matrixP => i j.
rewrite !ord1 !mxE /layer /affine /normalise.
under eq_bigr => l _ do rewrite !mxE addrK unscale ?g0 //.
by rewrite -mulr_suml sum_centred mul0r.
Qed.

(* beta . gamma^-1 as a 1 x 1 scalar matrix. *)
Lemma dot_scalar g b : b *m (ginv g)^T = (\sum_i b 0 i / g 0 i)%:M.
Proof.
apply/matrixP => i j; rewrite !ord1 !mxE /= mulr1n.
by apply: eq_bigr => l _; rewrite !mxE.
Qed.

(* BEGIN-STATEMENT uncentred *)
Theorem uncentred eps g b X :
  (forall i, g 0 i != 0) ->
  moment (outs eps g b X) *m (ginv g)^T = predicted (outs eps g b X) g b.
(* END-STATEMENT uncentred *)
Proof.
move=> g0; rewrite /moment /predicted /smean -scalemxAl mulmx_suml.
under eq_bigr => k _ do rewrite -mulmxA out_dot // dot_scalar mul_mx_scalar.
by rewrite -scaler_sumr -linear_sum !linearZ /= scalerA scalerA mulrC.
Qed.

End Uncentred.

Print Assumptions uncentred.
