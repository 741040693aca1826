(* T3 (minimality), algebraic part.
   (a) The centring matrix P = I - 1 1^T / d is idempotent (every d).
   (b) rank P = d - 1 (d >= 1): its kernel is exactly the all-ones line.
   (c) For a finite sample of N inputs (rows of X), the empirical centred
       covariance C of the LayerNorm outputs has kernel EXACTLY span(gamma^-1),
       under the genericity hypothesis that the centred normalised inputs
       z_k - zbar span the hyperplane 1^perp, stated in its dual form: every u
       orthogonal to all z_k - zbar is a multiple of 1.  (The z_k - zbar always
       lie in 1^perp, by T1, so this says they span it.)
   Not claimed here: the closed form of C for isotropic Gaussian inputs (an
   expectation over a distribution; see the SymPy layer).

   Generality: any real closed field, every d, N, eps; gamma_i <> 0.  The
   sample covariance is written with the sample centring matrix P_N: the rows
   of P_N Y are y_k - m, so C = N^-1 (P_N Y)^T (P_N Y) is T2's C.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative control: RMSNorm; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Minimality.
Variable R : rcfType.

(* BEGIN-DEF centring *)
(* The centring matrix P_n = I - 1 1^T / n. *)
Definition cmx n : 'M[R]_n := 1%:M - n%:R^-1 *: const_mx 1.
(* END-DEF centring *)

(* The all-ones matrices multiply by counting: J_(m,n) J_(n,p) = n J_(m,p). *)
Lemma ones_mul m n p :
  (const_mx 1 : 'M[R]_(m, n)) *m (const_mx 1 : 'M[R]_(n, p)) = n%:R *: const_mx 1.
Proof.
apply/matrixP => i j; rewrite !mxE (eq_bigr (fun=> 1)) => [|k _]; last by rewrite !mxE mulr1.
by rewrite sumr_const card_ord mulr1.
Qed.

(* n^-1 / n * n = n^-1, also when n = 0 (MathComp's 0^-1 = 0). *)
Lemma inv_nat_idem n : n%:R^-1 / n%:R * n%:R = n%:R^-1 :> R.
Proof.
have [->|n0] := eqVneq (n%:R : R) 0; first by rewrite invr0 !mul0r.
by rewrite divfK.
Qed.

Lemma cmx_idem n : cmx n *m cmx n = cmx n.
Proof.
rewrite /cmx mulmxBl mul1mx mulmxBr mulmx1 -scalemxAl -scalemxAr ones_mul !scalerA.
by rewrite inv_nat_idem subrr subr0.
Qed.

(* The all-ones row is killed by P_n (n > 0). *)
Lemma ones_cmx n : (0 < n)%N -> (const_mx 1 : 'rV[R]_n) *m cmx n = 0.
Proof.
move=> n0; rewrite /cmx mulmxBr mulmx1 -scalemxAr ones_mul scalerA mulVf ?scale1r ?subrr //.
by rewrite pnatr_eq0 -lt0n.
Qed.

(* Every row killed by P_n is a multiple of the all-ones row. *)
Lemma ker_cmx_sub n : (kermx (cmx n) <= (const_mx 1 : 'rV[R]_n))%MS.
Proof.
have K := mulmx_ker (cmx n); move: K; rewrite /cmx mulmxBr mulmx1 => /eqP; rewrite subr_eq0 => /eqP ->.
apply/submxP; exists (n%:R^-1 *: (kermx (cmx n) *m const_mx 1)).
by rewrite -scalemxAl -scalemxAr -mulmxA ones_mul scale1r.
Qed.

Lemma rank_cmx n : (0 < n)%N -> \rank (cmx n) = n.-1.
Proof.
move=> n0; have one0 : (const_mx 1 : 'rV[R]_n) != 0.
  by apply/eqP => /matrixP /(_ 0 (Ordinal n0)); rewrite !mxE => /eqP; rewrite oner_eq0.
have r1 : \rank (const_mx 1 : 'rV[R]_n) = 1%N by rewrite rank_rV one0.
have k1 : \rank (kermx (cmx n)) = 1%N.
  apply/eqP; rewrite eqn_leq; apply/andP; split.
    by rewrite -r1 mxrankS ?ker_cmx_sub.
  by rewrite -r1 mxrankS //; apply/sub_kermxP/ones_cmx.
move: k1; rewrite mxrank_ker => k1.
by rewrite -(subKn (rank_leq_row (cmx n))) k1 subn1.
Qed.

Variables (d N : nat).
Implicit Types (x g b v : 'rV[R]_d) (eps : R) (X : 'M[R]_(N, d)).

Definition mean x : R := (\sum_i x 0 i) / d%:R.
Definition var x : R := (\sum_i (x 0 i - mean x) ^+ 2) / d%:R.
Definition msq x : R := (\sum_i x 0 i ^+ 2) / d%:R.

(* BEGIN-DEF norm *)
(* LayerNorm's normalised vector: centre, then divide by sqrt(var + eps). *)
Definition normalise eps x : 'rV[R]_d :=
  \row_i ((x 0 i - mean x) / Num.sqrt (var x + eps)).
(* END-DEF norm *)

(* Row k: the normalised input z_k; and the output y_k = gamma .* z_k + beta. *)
Definition zmx eps X : 'M[R]_(N, d) := \matrix_(k, i) normalise eps (row k X) 0 i.
Definition ymx eps g b X : 'M[R]_(N, d) := \matrix_(k, i) (g 0 i * zmx eps X k i + b 0 i).

(* The empirical centred covariance, written with the sample centring matrix:
   rows of P_N Y are y_k - m, so C = N^-1 sum_k (y_k - m)^T (y_k - m) as in T2. *)
Definition cov (Y : 'M[R]_(N, d)) : 'M[R]_d := N%:R^-1 *: ((cmx N *m Y)^T *m (cmx N *m Y)).

Definition ginv g : 'rV[R]_d := \row_i (g 0 i)^-1.

Lemma sum_centred x : \sum_i (x 0 i - mean x) = 0.
Proof.
rewrite sumrB sumr_const card_ord /mean -[_ *+ d]mulr_natr.
have [d0|d0] := eqVneq (d%:R : R) 0; last by rewrite divfK ?subrr.
have dz : d = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) d0.
rewrite d0 mulr0 subr0 big1 // => i _.
by exfalso; have := ltn_ord i; move: (nat_of_ord i) => k; rewrite dz.
Qed.

(* Y = Z diag(gamma) + 1_N beta. *)
Lemma ymx_split eps g b X :
  ymx eps g b X = zmx eps X *m diag_mx g + (const_mx 1 : 'M[R]_(N, 1)) *m b.
Proof. by apply/matrixP => k i; rewrite mul_mx_diag !mxE big_ord1 !mxE mul1r mulrC. Qed.

(* P_N kills the all-ones column (N = 0: an empty matrix). *)
Lemma cmx_ones : cmx N *m (const_mx 1 : 'M[R]_(N, 1)) = 0.
Proof.
have [N0|N0] := eqVneq (N%:R : R) 0.
  have Nz : N = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) N0.
  by apply/matrixP => k j; exfalso; have := ltn_ord k; move: (nat_of_ord k) => k'; rewrite Nz.
by rewrite /cmx mulmxBl mul1mx -scalemxAl ones_mul scalerA mulVf ?scale1r ?subrr.
Qed.

(* Centred outputs: P_N Y = (P_N Z) diag(gamma). *)
Lemma centred_out eps g b X : cmx N *m ymx eps g b X = cmx N *m zmx eps X *m diag_mx g.
Proof. by rewrite ymx_split mulmxDr !mulmxA cmx_ones mul0mx addr0. Qed.

(* T1: every normalised input sums to zero, Z 1^T = 0. *)
Lemma zmx_ones eps X : zmx eps X *m (const_mx 1 : 'rV[R]_d)^T = 0.
Proof.
apply/matrixP => k j; rewrite !mxE.
under eq_bigr => i _ do rewrite !mxE mulr1.
rewrite -mulr_suml (eq_bigr (fun i => row k X 0 i - mean (row k X))) => [|i _]; last by rewrite mxE.
by rewrite sum_centred mul0r.
Qed.

Lemma diag_row g v : diag_mx g *m v^T = (\row_i (g 0 i * v 0 i))^T.
Proof. by apply/matrixP => i j; rewrite mul_diag_mx !mxE (ord1 j). Qed.

(* A column whose squared norm vanishes is zero (ordered field). *)
Lemma sumsq (w : 'cV[R]_N) : w^T *m w = 0 -> w = 0.
Proof.
move/matrixP/(_ 0 0); rewrite !mxE; under eq_bigr => i _ do rewrite mxE; move=> S.
have ge0 i : true -> 0 <= w i 0 * w i 0 by rewrite -expr2 sqr_ge0.
apply/matrixP => k j; rewrite (ord1 j) mxE; apply/eqP; rewrite -sqrf_eq0 expr2.
by rewrite (psumr_eq0P ge0 S).
Qed.

(* v C v^T = N^-1 |W v^T|^2 with W = P_N Y, so C v^T = 0 forces W v^T = 0. *)
Lemma cov_null_col (W : 'M[R]_(N, d)) v :
  N%:R^-1 *: (W^T *m W) *m v^T = 0 -> W *m v^T = 0.
Proof.
move=> Cv; have [N0|N0] := eqVneq (N%:R^-1 : R) 0.
  have Nz : N = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) -invr_eq0 N0.
  by apply/matrixP => k j; exfalso; have := ltn_ord k; move: (nat_of_ord k) => k'; rewrite Nz.
apply: sumsq; move: (congr1 (mulmx v) Cv); rewrite mulmx0 -scalemxAl -scalemxAr => /eqP.
by rewrite scaler_eq0 (negbTE N0) /= => /eqP <-; rewrite trmx_mul trmxK !mulmxA.
Qed.

(* BEGIN-STATEMENT minimality *)
Theorem minimality eps g b X :
  (forall i, g 0 i != 0) ->
  (forall u : 'rV[R]_d, cmx N *m zmx eps X *m u^T = 0 -> exists a, u = a *: const_mx 1) ->
  [/\ cmx d *m cmx d = cmx d,
      (0 < d)%N -> \rank (cmx d) = d.-1 &
      forall v, cov (ymx eps g b X) *m v^T = 0 <-> exists a, v = a *: ginv g].
(* END-STATEMENT minimality *)
Proof.
move=> g0 span; split; [exact: cmx_idem | exact: rank_cmx | move=> v].
rewrite /cov centred_out; split => [/cov_null_col|[a ->]].
  rewrite -mulmxA diag_row => /span [a ha]; exists a; apply/rowP => i.
  by move/rowP/(_ i): ha; rewrite !mxE mulr1 => <-; rewrite mulrC mulKf.
rewrite -scalemxAl -!mulmxA linearZ /= -!scalemxAr diag_row.
have -> : \row_i (g 0 i * ginv g 0 i) = const_mx 1 by apply/rowP => i; rewrite !mxE mulfV.
by rewrite zmx_ones !mulmx0 !scaler0.
Qed.

End Minimality.

Print Assumptions minimality.
