(* T7 (parameter space, read side).  A layer f(y) = y W + c (row-vector
   convention, W : d x m, c : 1 x m) reading LayerNorm outputs y is unchanged
   by the step (dW, dc) = t (gamma^-T u, -<gamma^-1, beta> u) for every
   direction u and every step t: an exact function-preserving direction, so
   its directional Fisher information is 0.  Without a bias the same holds
   when <gamma^-1, beta> = 0.  For the LM head the consumer is the softmax of
   the logits: we do NOT use an exponential; we state the consumer as ANY
   function F of the logits that is invariant under adding the same constant
   to every logit (softmax, log-softmax, argmax, cross-entropy all are), and
   prove F unchanged along u = 1 with no bias at all.

   Generality: any real closed field, every d, m, eps, x, W, c, u, t;
   hypothesis gamma_i <> 0 for every i.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py
   (negative control: RMSNorm; statement mutants); proofs are never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section ReadSide.
Variables (R : rcfType) (d m : nat).
Implicit Types (x g b : 'rV[R]_d) (eps t : R).

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

(* <gamma^-1, beta>. *)
Definition offset g b : R := \sum_i b 0 i / g 0 i.

(* T1 in matrix form: (y - beta) *m (gamma^-1)^T = 0. *)
Lemma hyper_dot eps g b x :
  (forall i, g 0 i != 0) -> (layer eps g b x - b) *m (ginv g)^T = 0.
Proof.
move=> g0; apply/matrixP => i j; rewrite !ord1 !mxE /layer /affine /normalise.
under eq_bigr => l _ do rewrite !mxE addrK unscale ?g0 //.
by rewrite -mulr_suml sum_centred mul0r.
Qed.

(* beta . gamma^-1 as a 1 x 1 scalar matrix. *)
Lemma dot_scalar g b : b *m (ginv g)^T = (offset g b)%:M.
Proof.
apply/matrixP => i j; rewrite !ord1 !mxE /= mulr1n.
by apply: eq_bigr => l _; rewrite !mxE.
Qed.

(* Hence every output has y . gamma^-1 = <gamma^-1, beta>. *)
Lemma out_dot eps g b x :
  (forall i, g 0 i != 0) -> layer eps g b x *m (ginv g)^T = (offset g b)%:M.
Proof. by move=> g0; rewrite -(subrK b (layer eps g b x)) mulmxDl hyper_dot // add0r dot_scalar. Qed.

(* The step along gamma^-T u moves the read-out by t <gamma^-1, beta> u. *)
Lemma read_dir eps g b x t (u : 'rV[R]_m) : (forall i, g 0 i != 0) ->
  layer eps g b x *m (t *: ((ginv g)^T *m u)) = (t * offset g b) *: u.
Proof. by move=> g0; rewrite scalemxAr mulmxA out_dot // mul_scalar_mx scalerA mulrC. Qed.

(* BEGIN-STATEMENT read_side *)
Theorem read_side eps g b x (W : 'M[R]_(d, m)) (c u : 'rV[R]_m) t :
  (forall i, g 0 i != 0) ->
  [/\ layer eps g b x *m (W + t *: ((ginv g)^T *m u)) + (c - (t * offset g b) *: u)
        = layer eps g b x *m W + c,
      offset g b = 0 ->
        layer eps g b x *m (W + t *: ((ginv g)^T *m u)) = layer eps g b x *m W &
      forall (T : Type) (F : 'rV[R]_m -> T),
        (forall l s, F (l + s *: const_mx 1) = F l) ->
        F (layer eps g b x *m (W + t *: ((ginv g)^T *m const_mx 1)))
          = F (layer eps g b x *m W)].
(* END-STATEMENT read_side *)
Proof.
move=> g0; split.
- by rewrite mulmxDr read_dir // addrACA subrr addr0.
- by move=> s0; rewrite mulmxDr read_dir // s0 mulr0 scale0r addr0.
- by move=> T F hF; rewrite mulmxDr read_dir // hF.
Qed.

End ReadSide.

Print Assumptions read_side.
