(* T2 (kernel).  For every finite sample of N inputs (the rows of X), every
   epsilon and every width d, the empirical centred covariance C of the
   LayerNorm outputs satisfies C *m (gamma^-1)^T = 0.

   C = N^-1 * sum_k (y_k - m)^T (y_k - m), m = N^-1 * sum_k y_k (N = 0: C = 0).
   Generality: any real closed field, every d, every N, every eps; hypothesis
   gamma_i <> 0 for every i.  The normalisation 1/N or 1/(N - 1) does not
   matter (C is a multiple of the sum); 1/N is used.

   Idea: (y_k - beta) . gamma^-1 = 0 for every k (T1), so (y_k - m) . gamma^-1
   is the same number c for every k, and C gamma^-1 = (sum_k (y_k - m))^T c / N
   = 0 because centred samples sum to zero.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative control: RMSNorm; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Kernel.
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

(* gamma^-1 as a row vector (MathComp's 0^-1 = 0; the theorem assumes no zero). *)
Definition ginv g : 'rV[R]_d := \row_i (g 0 i)^-1.

(* The N outputs of the layer on the rows of X. *)
Definition outs eps g b X (k : 'I_N) := layer eps g b (row k X).

Definition smean (Y : 'I_N -> 'rV[R]_d) : 'rV[R]_d := N%:R^-1 *: \sum_k Y k.

(* BEGIN-DEF cov *)
Definition cov (Y : 'I_N -> 'rV[R]_d) : 'M[R]_d :=
  N%:R^-1 *: \sum_k (Y k - smean Y)^T *m (Y k - smean Y).
(* END-DEF cov *)

(* Centred samples sum to zero (N = 0: an empty sum). *)
Lemma sample_centred (Y : 'I_N -> 'rV[R]_d) : \sum_k (Y k - smean Y) = 0.
Proof.
rewrite sumrB sumr_const card_ord /smean scalerMnl -mulr_natl.
have [N0|N0] := eqVneq (N%:R : R) 0; last by rewrite mulfV // scale1r subrr.
have Nz : N = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) N0.
rewrite N0 mul0r scale0r subr0 big1 // => k _.
by exfalso; have := ltn_ord k; move: (nat_of_ord k) => j; rewrite Nz.
Qed.

(* T1 in matrix form: (y - beta) *m (gamma^-1)^T = 0. *)
Lemma hyper_dot eps g b x :
  (forall i, g 0 i != 0) -> (layer eps g b x - b) *m (ginv g)^T = 0.
Proof.
move=> g0; apply/matrixP => i j; rewrite !ord1 !mxE /layer /affine /normalise.
under eq_bigr => l _ do rewrite !mxE addrK unscale ?g0 //.
by rewrite -mulr_suml sum_centred mul0r.
Qed.

(* y_k - m = (y_k - beta) - (m - beta). *)
Lemma shift (y m b : 'rV[R]_d) : y - m = (y - b) - (m - b).
Proof. by rewrite opprB addrA subrK. Qed.

(* BEGIN-STATEMENT kernel *)
Theorem kernel eps g b X :
  (forall i, g 0 i != 0) ->
  cov (outs eps g b X) *m (ginv g)^T = 0.
(* END-STATEMENT kernel *)
Proof.
move=> g0; rewrite /cov -scalemxAl mulmx_suml.
under eq_bigr => k _ do
  rewrite -mulmxA [in X in _ *m X](shift _ _ b) mulmxBl hyper_dot // sub0r.
by rewrite -mulmx_suml -linear_sum sample_centred linear0 mul0mx scaler0.
Qed.

End Kernel.

Print Assumptions kernel.
