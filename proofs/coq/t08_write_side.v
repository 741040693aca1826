(* T8 (write side).  LayerNorm is blind to a shift along the all-ones vector:
   LN(x + t 1) = LN(x) for every x, t, eps, gamma, beta and d.  Hence a
   weight W (n x d, row-vector convention h *m W) writing into a residual
   stream read only through LayerNorms has the dead directions dW whose rows
   are constant (dW = w 1^T): LN(x + h (W + dW)) = LN(x + h W) for every h.
   Fails for RMSNorm (negative control).

   Generality: any real closed field, every d, n, eps, t, x, h, W; the one
   hypothesis of the write-side part is that every row of dW is constant.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative control: RMSNorm; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section WriteSide.
Variables (R : rcfType) (d n : nat).
Implicit Types (x c g b : 'rV[R]_d) (eps t : R).

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

(* Adding a vector c with equal entries moves the mean by that entry. *)
Lemma mean_shift x c i : (forall j l, c 0 j = c 0 l) -> mean (x + c) = mean x + c 0 i.
Proof.
move=> cc; have d0 : (d%:R : R) != 0 by rewrite pnatr_eq0 -lt0n (leq_trans _ (ltn_ord i)).
rewrite /mean (eq_bigr (fun j => x 0 j + c 0 i)) => [|j _]; last by rewrite mxE (cc j i).
by rewrite big_split sumr_const card_ord /= -[c 0 i *+ d]mulr_natr mulrDl mulfK.
Qed.

(* ... so the centred entries do not move. *)
Lemma centred_shift x c i : (forall j l, c 0 j = c 0 l) ->
  x 0 i + c 0 i - mean (x + c) = x 0 i - mean x.
Proof. by move=> cc; rewrite (mean_shift x i cc) opprD addrACA subrr addr0. Qed.

(* Both the centred vector and the variance are unchanged, hence LN(x + c). *)
Lemma layer_shift eps g b x c : (forall j l, c 0 j = c 0 l) ->
  layer eps g b (x + c) = layer eps g b x.
Proof.
move=> cc; rewrite /layer /affine /normalise.
have -> : var (x + c) = var x.
  by rewrite /var; congr (_ / _); apply: eq_bigr => j _; rewrite mxE centred_shift.
by apply/rowP => i; rewrite !mxE centred_shift.
Qed.

(* h *m dW has equal entries when every row of dW is constant. *)
Lemma write_const (h : 'rV[R]_n) (dW : 'M[R]_(n, d)) :
  (forall l j j', dW l j = dW l j') -> forall j l, (h *m dW) 0 j = (h *m dW) 0 l.
Proof. by move=> cW j l; rewrite !mxE; apply: eq_bigr => m _; rewrite (cW m j l). Qed.

(* BEGIN-STATEMENT invariance *)
Theorem invariance eps g b x t (h : 'rV[R]_n) (W dW : 'M[R]_(n, d)) :
  (forall l j j', dW l j = dW l j') ->
  layer eps g b (x + t *: const_mx 1) = layer eps g b x /\
  layer eps g b (x + h *m (W + dW)) = layer eps g b (x + h *m W).
(* END-STATEMENT invariance *)
Proof.
move=> cW; split; first by apply: layer_shift => j l; rewrite !mxE.
by rewrite mulmxDr addrA layer_shift //; apply: write_const.
Qed.

End WriteSide.

Print Assumptions invariance.
