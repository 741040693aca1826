(* T6 (zero scales).  If gamma_i = 0, the i-th output coordinate of the
   layer is the constant beta_i, so for every finite sample of N inputs the
   unit vector e_i lies in the kernel of the empirical centred covariance C;
   and gamma^-1 is undefined: no vector v has gamma_j v_j = 1 for every j
   (the library reports this and never divides by zero).

   Generality: any real closed field, every d, N, eps, i; the one hypothesis
   is gamma_i = 0.  (T6 for a set Z of zero scales is this for each i in Z.)

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative control: scaling the input before normalising; statement
   mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section ZeroScales.
Variables (R : rcfType) (d N : nat).
Implicit Types (x g b : 'rV[R]_d) (eps : R) (X : 'M[R]_(N, d)).

Definition mean x : R := (\sum_i x 0 i) / d%:R.
Definition var x : R := (\sum_i (x 0 i - mean x) ^+ 2) / d%:R.

Definition normalise eps x : 'rV[R]_d :=
  \row_i ((x 0 i - mean x) / Num.sqrt (var x + eps)).

(* BEGIN-DEF layer *)
(* LayerNorm: normalise, then y = gamma .* z + beta. *)
Definition layer eps g b x : 'rV[R]_d :=
  \row_i (g 0 i * normalise eps x 0 i + b 0 i).
(* END-DEF layer *)

Definition outs eps g b X (k : 'I_N) := layer eps g b (row k X).

Definition smean (Y : 'I_N -> 'rV[R]_d) : 'rV[R]_d := N%:R^-1 *: \sum_k Y k.

Definition cov (Y : 'I_N -> 'rV[R]_d) : 'M[R]_d :=
  N%:R^-1 *: \sum_k (Y k - smean Y)^T *m (Y k - smean Y).

(* Centred samples sum to zero (N = 0: an empty sum). *)
Lemma sample_centred (Y : 'I_N -> 'rV[R]_d) : \sum_k (Y k - smean Y) = 0.
Proof.
rewrite sumrB sumr_const card_ord /smean scalerMnl -mulr_natl.
have [N0|N0] := eqVneq (N%:R : R) 0; last by rewrite mulfV // scale1r subrr.
have Nz : N = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) N0.
rewrite N0 mul0r scale0r subr0 big1 // => k _.
by exfalso; have := ltn_ord k; move: (nat_of_ord k) => j; rewrite Nz.
Qed.

(* A dead channel outputs beta_i: (y - beta) *m e_i^T = 0. *)
Lemma dead_dot eps g b x i :
  g 0 i = 0 -> (layer eps g b x - b) *m (delta_mx 0 i : 'rV[R]_d)^T = 0.
Proof.
move=> gi; apply/matrixP => k l; rewrite !ord1 !mxE (bigD1 i) //= big1 => [|j ji].
  by rewrite !mxE !eqxx /= gi mul0r add0r subrr mul0r addr0.
by rewrite !mxE (negbTE ji) mulr0.
Qed.

(* y_k - m = (y_k - beta) - (m - beta). *)
Lemma shift (y m b : 'rV[R]_d) : y - m = (y - b) - (m - b).
Proof. by rewrite opprB addrA subrK. Qed.

(* No vector inverts gamma entrywise once one entry is zero. *)
Lemma no_inverse g i : g 0 i = 0 -> ~ exists v : 'rV[R]_d, forall j, g 0 j * v 0 j = 1.
Proof. by move=> gi [v hv]; move: (hv i); rewrite gi mul0r => /eqP; rewrite eq_sym oner_eq0. Qed.

(* BEGIN-STATEMENT zero_scale *)
Theorem zero_scale eps g b X i :
  g 0 i = 0 ->
  cov (outs eps g b X) *m (delta_mx 0 i : 'rV[R]_d)^T = 0 /\
  ~ (exists v : 'rV[R]_d, forall j : 'I_d, g 0 j * v 0 j = 1).
(* END-STATEMENT zero_scale *)
Proof.
move=> gi; split; last exact: no_inverse gi.
rewrite /cov -scalemxAl mulmx_suml.
under eq_bigr => k _ do
  rewrite -mulmxA [in X in _ *m X](shift _ _ b) mulmxBl dead_dot // sub0r.
by rewrite -mulmx_suml -linear_sum sample_centred linear0 mul0mx scaler0.
Qed.

End ZeroScales.

Print Assumptions zero_scale.
