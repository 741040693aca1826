(* T1 (hyperplane).  For every input x, every epsilon and every width d, a
   LayerNorm output y = gamma .* z + beta satisfies <gamma^-1, y - beta> = 0,
   because the entries of the centred vector z sum to zero.

   Generality: any real closed field R (the normaliser is the real square
   root sqrt(var x + eps)); every d (d = 0 included: empty sums); every eps
   (the identity does not need eps >= 0 nor a positive normaliser, since
   sum_i c * r^-1 = (sum_i c) * r^-1 for every r).  The one hypothesis is
   gamma_i <> 0 for every i, without which gamma^-1 is not defined.

   Regions between BEGIN-/END- markers are replaced by proofs/coq_check.py to
   build the negative control (RMSNorm) and the statement mutants; the proof
   script below the statement is never edited. *)
From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Hyperplane.
Variables (R : rcfType) (d : nat).
Implicit Types (x g b : 'rV[R]_d) (eps : R).

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

(* BEGIN-STATEMENT hyperplane *)
Theorem hyperplane eps g b x :
  (forall i, g 0 i != 0) ->
  \sum_i (layer eps g b x 0 i - b 0 i) / g 0 i = 0.
(* END-STATEMENT hyperplane *)
Proof.
move=> g0; rewrite /layer /affine /normalise.
under eq_bigr => i _ do rewrite !mxE addrK unscale ?g0 //.
by rewrite -mulr_suml sum_centred mul0r.
Qed.

End Hyperplane.

Print Assumptions hyperplane.
