(* T9 (GroupNorm, scale-then-centre, Gemma's (1 + w)).

   (a) GroupNorm with G groups (group of channel i: grp i) centres and
       normalises each group separately.  For every finite sample of N inputs
       the G x d matrix V whose row h is gamma^-1 restricted to group h
       satisfies V C = 0 (C the empirical centred covariance of the outputs),
       and when every group is non-empty (a representative r h in each group)
       and gamma_i <> 0, V has rank G: the kernel of C has dimension >= G.
       (Exactly G needs a genericity hypothesis on the sample, as in T3; not
       claimed here.)
   (b) Scale-then-centre (y = centre(gamma .* x) / s + beta) has the all-ones
       vector in the kernel of C, not gamma^-1.
   (c) Gemma-style parameterisation gamma = 1 + w: the kernel direction is
       (1 + w)^-1, stated over w with 1 + w_i <> 0.

   Generality: any real closed field, every d, G, N, eps, grouping grp.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative controls: scale-before-centre per group, centre-before-scale
   for the all-ones claim; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Groups.
Variables (R : rcfType) (d G N : nat) (grp : 'I_d -> 'I_G).
Implicit Types (x g b w : 'rV[R]_d) (eps : R) (X : 'M[R]_(N, d)).

Definition mean x : R := (\sum_i x 0 i) / d%:R.
Definition var x : R := (\sum_i (x 0 i - mean x) ^+ 2) / d%:R.

(* The channels of group h. *)
Definition grpset (h : 'I_G) := [set i | grp i == h].

Definition gmean x h : R := (\sum_(i in grpset h) x 0 i) / #|grpset h|%:R.
Definition gvar x h : R := (\sum_(i in grpset h) (x 0 i - gmean x h) ^+ 2) / #|grpset h|%:R.

(* BEGIN-DEF groupnorm *)
(* GroupNorm: centre and normalise within each group, then gamma .* z + beta. *)
Definition gnorm eps g b x : 'rV[R]_d :=
  \row_i (g 0 i * ((x 0 i - gmean x (grp i)) / Num.sqrt (gvar x (grp i) + eps)) + b 0 i).
(* END-DEF groupnorm *)

(* BEGIN-DEF scale_centre *)
(* Scale-then-centre: scale the input by gamma, then centre and normalise. *)
Definition stc eps g b x : 'rV[R]_d :=
  let s := \row_i (g 0 i * x 0 i) in
  \row_i ((s 0 i - mean s) / Num.sqrt (var s + eps) + b 0 i).
(* END-DEF scale_centre *)

(* LayerNorm with Gemma's parameterisation: the stored weight is w, the scale 1 + w. *)
Definition gemma eps w b x : 'rV[R]_d :=
  \row_i ((1 + w 0 i) * ((x 0 i - mean x) / Num.sqrt (var x + eps)) + b 0 i).

(* Row h: gamma^-1 on group h, 0 elsewhere. *)
Definition vgrp g : 'M[R]_(G, d) := \matrix_(h, i) (if grp i == h then (g 0 i)^-1 else 0).

Definition smean (Y : 'I_N -> 'rV[R]_d) : 'rV[R]_d := N%:R^-1 *: \sum_k Y k.

Definition cov (Y : 'I_N -> 'rV[R]_d) : 'M[R]_d :=
  N%:R^-1 *: \sum_k (Y k - smean Y)^T *m (Y k - smean Y).

Definition outs (f : 'rV[R]_d -> 'rV[R]_d) X (k : 'I_N) := f (row k X).

Lemma sample_centred (Y : 'I_N -> 'rV[R]_d) : \sum_k (Y k - smean Y) = 0.
Proof.
rewrite sumrB sumr_const card_ord /smean scalerMnl -mulr_natl.
have [N0|N0] := eqVneq (N%:R : R) 0; last by rewrite mulfV // scale1r subrr.
have Nz : N = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) N0.
rewrite N0 mul0r scale0r subr0 big1 // => k _.
by exfalso; have := ltn_ord k; move: (nat_of_ord k) => j; rewrite Nz.
Qed.

Lemma shift (y m b : 'rV[R]_d) : y - m = (y - b) - (m - b).
Proof. by rewrite opprB addrA subrK. Qed.

(* If every row of V is orthogonal to every y_k - beta, then V C = 0. *)
Lemma cov_null p (V : 'M[R]_(p, d)) b (Y : 'I_N -> 'rV[R]_d) :
  (forall k, V *m (Y k - b)^T = 0) -> V *m cov Y = 0.
Proof.
move=> hV; rewrite /cov -scalemxAr mulmx_sumr.
under eq_bigr => k _ do
  rewrite mulmxA [in X in V *m X^T](shift _ _ b) [in X in V *m X]linearB /= mulmxBr hV sub0r.
by rewrite -mulmx_sumr sample_centred mulmx0 scaler0.
Qed.

(* Centred entries of a group sum to zero. *)
Lemma group_centred x h : \sum_(i in grpset h) (x 0 i - gmean x h) = 0.
Proof.
rewrite sumrB sumr_const /gmean -[_ *+ #|_|]mulr_natr.
have [c0|c0] := eqVneq (#|grpset h|%:R : R) 0; last by rewrite divfK ?subrr.
have /cards0_eq E : #|grpset h| = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) c0.
by rewrite c0 mulr0 subr0 E big_set0.
Qed.

Lemma sum_centred x : \sum_i (x 0 i - mean x) = 0.
Proof.
rewrite sumrB sumr_const card_ord /mean -[_ *+ d]mulr_natr.
have [d0|d0] := eqVneq (d%:R : R) 0; last by rewrite divfK ?subrr.
have dz : d = 0%N by apply/eqP; rewrite -(pnatr_eq0 R) d0.
rewrite d0 mulr0 subr0 big1 // => i _.
by exfalso; have := ltn_ord i; move: (nat_of_ord i) => k; rewrite dz.
Qed.

Lemma unscale (c z : R) : c != 0 -> c * z / c = z.
Proof. by move=> c0; rewrite mulrC mulKf. Qed.

(* GroupNorm outputs are orthogonal to every row of V, after removing beta. *)
Lemma group_dot eps g b x : (forall i, g 0 i != 0) ->
  vgrp g *m (gnorm eps g b x - b)^T = 0.
Proof.
move=> g0; apply/matrixP => h j; rewrite ord1 !mxE.
under eq_bigr => i _ do rewrite !mxE addrK (fun_if (fun a => a * _)) mul0r.
rewrite -big_mkcond /=.
under eq_bigr => i /eqP gi do rewrite mulrC unscale ?g0 // gi.
by rewrite (eq_bigl (mem (grpset h))) => [|i]; rewrite ?inE // -mulr_suml group_centred mul0r.
Qed.

(* Scale-then-centre outputs are orthogonal to the all-ones vector. *)
Lemma ones_dot eps g b x : const_mx 1 *m (stc eps g b x - b)^T = 0 :> 'M[R]_1.
Proof.
apply/matrixP => i j; rewrite !ord1 !mxE.
under eq_bigr => l _ do rewrite !mxE addrK mul1r.
rewrite -mulr_suml; have -> : \sum_l (g 0 l * x 0 l - mean (\row_l (g 0 l * x 0 l))) = 0.
  rewrite (eq_bigr (fun l => (\row_l (g 0 l * x 0 l)) 0 l - mean (\row_l (g 0 l * x 0 l)))).
    exact: sum_centred.
  by move=> l _; rewrite mxE.
by rewrite mul0r.
Qed.

(* Gemma's outputs are orthogonal to (1 + w)^-1. *)
Lemma gemma_dot eps w b x : (forall i, 1 + w 0 i != 0) ->
  (\row_i (1 + w 0 i)^-1 : 'rV[R]_d) *m (gemma eps w b x - b)^T = 0.
Proof.
move=> w0; apply/matrixP => i j; rewrite !ord1 !mxE.
under eq_bigr => l _ do rewrite !mxE addrK mulrC unscale ?w0 //.
by rewrite -mulr_suml sum_centred mul0r.
Qed.

(* V has a right inverse when every group has a representative: rank G. *)
Lemma vgrp_free g (r : 'I_G -> 'I_d) :
  (forall i, g 0 i != 0) -> (forall h, grp (r h) = h) -> row_free (vgrp g).
Proof.
move=> g0 hr; apply/row_freeP.
exists (\matrix_(i, h) (if i == r h then g 0 i else 0)).
apply/matrixP => h h'; rewrite !mxE (bigD1 (r h')) //= big1 => [|i ih'].
  rewrite !mxE eqxx hr addr0 eq_sym.
  by case: eqP => _; rewrite ?mulVf ?mul0r.
by rewrite !mxE (negbTE ih') mulr0.
Qed.

(* BEGIN-STATEMENT groups *)
Theorem groups eps g b w X (r : 'I_G -> 'I_d) :
  (forall i, g 0 i != 0) ->
  (forall i, 1 + w 0 i != 0) ->
  (forall h, grp (r h) = h) ->
  [/\ vgrp g *m cov (outs (gnorm eps g b) X) = 0,
      (G <= \rank (kermx (cov (outs (gnorm eps g b) X))))%N,
      (const_mx 1 : 'rV[R]_d) *m cov (outs (stc eps g b) X) = 0 &
      (\row_i (1 + w 0 i)^-1 : 'rV[R]_d) *m cov (outs (gemma eps w b) X) = 0].
(* END-STATEMENT groups *)
Proof.
move=> g0 w0 hr.
have VC : vgrp g *m cov (outs (gnorm eps g b) X) = 0.
  by apply: (cov_null (b := b)) => k; apply: group_dot.
split => //.
- rewrite -(eqP (vgrp_free g0 hr)); apply: mxrankS; exact/sub_kermxP.
- by apply: (cov_null (b := b)) => k; apply: ones_dot.
- by apply: (cov_null (b := b)) => k; apply: gemma_dot.
Qed.

End Groups.

Print Assumptions groups.
