"""The Fisher report: every candidate family measured against random directions of the same tensors."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from typing import Any, Literal

import numpy as np

from deadir.arch.plans import UnsupportedArchitectureError
from deadir.errors import InputShapeError
from deadir.fisher.directions import DeadDirection, candidate_parameter_directions, plan_for
from deadir.fisher.probe import FisherProbe
from deadir.report import render_table

__all__ = ["FisherReport", "FisherRow", "fisher_report", "with_lm_head"]


@dataclasses.dataclass(frozen=True)
class FisherRow:
    """One (family, layer, predicted) group of :func:`fisher_report`.

    Each direction i of the group gets its Fisher F_i and the median R_i of the Fisher of
    ``n_random`` Gaussian unit directions of the *same* parameter tensors; ratios are F_i / R_i.
    """

    family: str
    layer: str
    count: int
    dim: int
    exact: bool
    max_fisher: float
    min_fisher: float
    median_random_fisher: float
    max_ratio: float
    min_ratio: float
    floor: float
    measured: Literal["dead", "live", "mixed"]

    @property
    def agrees(self) -> bool:
        """Whether the measurement matches the prediction (dead ⇔ every direction at or below its floor)."""
        return self.measured == ("dead" if self.exact else "live")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FisherReport:
    """Directional Fisher information of every candidate dead direction of a model."""

    arch: str
    forward_dtype: str
    measure_dtype: str
    rows: tuple[FisherRow, ...]
    notes: tuple[str, ...]
    n_random: int
    rounding_depth: int

    HEADERS = ("family", "layer", "count", "dim", "predicted", "max Fisher", "median random Fisher", "max ratio",
               "min ratio", "floor", "measured")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch, "forward_dtype": self.forward_dtype, "measure_dtype": self.measure_dtype,
            "n_random": self.n_random, "rounding_depth": self.rounding_depth,
            "rows": [{**r.to_dict(), "agrees": r.agrees} for r in self.rows], "notes": list(self.notes),
        }

    def table_rows(self) -> list[tuple[Any, ...]]:
        return [
            (r.family, r.layer, r.count, r.dim, "dead" if r.exact else "live", r.max_fisher,
             r.median_random_fisher, r.max_ratio, r.min_ratio, r.floor, r.measured)
            for r in self.rows
        ]

    def render(self) -> str:
        """A plain-text table followed by the notes."""
        title = (f"Directional Fisher information ({self.arch}; model dtype {self.forward_dtype}, measured in "
                 f"{self.measure_dtype}; one forward-mode tangent per direction; baseline: {self.n_random} random "
                 "unit directions of the same tensors)")
        text = render_table(self.HEADERS, self.table_rows(), title=title)
        return text + ("\n" + "\n".join(f"note: {n}" for n in self.notes) if self.notes else "")


def fisher_report(
    model: Any,
    inputs: Any,
    *,
    n_random: int = 8,
    seed: int = 0,
    include_negative: bool = True,
    layers: Collection[str] | None = None,
    lean: bool = True,
) -> FisherReport:
    """Measure the Fisher information along every candidate direction, grouped by (family, layer).

    For each direction (a seeded random free vector, normalised to a unit parameter direction): its
    Fisher F, the median R over ``n_random`` Gaussian unit directions of the same parameter tensors,
    the ratio F/R and the rounding floor (:meth:`FisherProbe.fisher_floor` of R); a group is measured
    "dead" when every direction is at or below its floor, "live" when none is. Candidates that the
    theorems predict are not exact (``include_negative``; e.g. the same formulas in an RMSNorm
    model) are measured too. ``layers`` keeps only the candidates of those layers (block indices as
    strings, "embeddings", "head"; ``deadir verify --sites final`` measures ("head",): the families
    of the final norm's reader, the LM head); every direction and its baselines are drawn exactly as
    in the full report, so a kept row has the same numbers either way.

    ``lean`` is :class:`FisherProbe`'s: False holds the whole model in float64 (the reference; same
    numbers up to float64 rounding).

    Cost: (1 + ``n_random``) forward-mode tangents of the float64 model per direction, in blocks sharing
    one primal pass, the head applied by vocabulary chunks (:meth:`FisherProbe.fisher_many`).

    Raises:
        UnsupportedArchitectureError, InputShapeError: see :func:`candidate_parameter_directions`
            and :class:`FisherProbe`.
    """
    import torch

    if n_random < 1:
        raise InputShapeError(f"n_random: must be ≥ 1, got {n_random}")
    cands, notes = candidate_parameter_directions(model)
    if not include_negative:
        cands = [c for c in cands if c.exact]
    # each candidate draws from its own streams, keyed by (seed, its index among all candidates): a
    # report restricted to some layers measures exactly the same directions as the full report
    numbered = list(enumerate(cands))
    if layers is not None:
        wanted = set(layers)
        kept = [(k, c) for k, c in numbered if c.layer in wanted]
        notes.append(f"only the candidates of layer(s) {sorted(wanted)}: {len(kept)} of {len(cands)}")
        numbered = kept
    probe = FisherProbe(model, inputs, lean=lean)
    groups: dict[tuple[str, str, bool], list[tuple[int, DeadDirection]]] = {}
    for k, c in numbered:
        groups.setdefault((c.family, c.layer, c.exact), []).append((k, c))
    rows = []
    for (family, layer, exact), items in groups.items():
        values, randoms, floors = [], [], []
        for k, c in items:
            stream = np.random.SeedSequence([seed, k])
            rng = np.random.default_rng(stream)
            gen = torch.Generator().manual_seed(int(stream.generate_state(1, np.uint64)[0] >> 1))
            own = c.perturbation(rng.standard_normal(c.free_dim), dtype=torch.float64)
            # one block of tangents: the direction and its random baselines share one primal pass
            measured_block = probe.fisher_many(
                [own, *(probe.random_direction(list(c.params), gen) for _ in range(n_random))]
            )
            values.append(measured_block[0])
            med = float(np.median(measured_block[1:]))
            randoms.append(med)
            floors.append(probe.fisher_floor(med))
        ratios = [v / r if r > 0 else math.inf for v, r in zip(values, randoms, strict=True)]
        below = [v <= f for v, f in zip(values, floors, strict=True)]
        measured: Literal["dead", "live", "mixed"] = "dead" if all(below) else "live" if not any(below) else "mixed"
        rows.append(FisherRow(
            family=family, layer=layer, count=len(items), dim=sum(c.free_dim for _, c in items), exact=exact,
            max_fisher=max(values), min_fisher=min(values), median_random_fisher=float(np.median(randoms)),
            max_ratio=max(ratios), min_ratio=min(ratios), floor=max(floors), measured=measured,
        ))
    arch = plan_for(model).arch
    measure = "float64"
    if probe.low_precision_ops:
        measure = f"float64 with {probe.compute_dtype} inside"
        ops = ", ".join(f"{op} → {dt}" for op, dt in sorted(probe.low_precision_ops.items())[:6])
        notes.append(
            f"the model's own code computes in {probe.compute_dtype} inside its float64 copy ({ops}); "
            f"floors use that dtype's unit roundoff {probe.unit_roundoff:.3g}"
        )
    return FisherReport(arch, probe.forward_dtype, measure, tuple(rows), tuple(notes), n_random,
                        probe.rounding_depth())


def with_lm_head(model: Any, *, seed: int = 0) -> tuple[Any, str]:
    """``model`` with a predictive head, for the Fisher information; returns (model, note).

    A model that already has output embeddings (…ForCausalLM, …ForMaskedLM) is returned as is.
    A base model (``AutoModel``, as ``deadir verify`` loads checkpoints) gets the masked-LM head of
    its architecture when there is one, else the causal-LM head: the base weights are copied in,
    a head tied to the input embeddings uses the real embeddings, and head weights the base model
    does not have are random-init (``seed``), which the note says.

    Raises:
        UnsupportedArchitectureError: no masked-LM or causal-LM class for the architecture.
    """
    import torch

    if callable(getattr(model, "get_output_embeddings", None)) and model.get_output_embeddings() is not None:
        return model, f"{type(model).__name__}: the model's own head"
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", ""))
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        auto: Any = AutoModelForMaskedLM
    elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        auto = AutoModelForCausalLM
    else:
        raise UnsupportedArchitectureError(f"model: no masked-LM or causal-LM head class for {model_type!r}")
    tied = _tied_head_around(model, auto, config)
    if tied is not None:
        return tied, (
            f"{type(tied).__name__} around the given {type(model).__name__} itself (no copy): its head is tied to "
            "the input embeddings, so it has no random-init weights"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        headed = auto.from_config(config)
    p = next(model.parameters())
    headed = headed.to(device=p.device, dtype=p.dtype).eval()
    base = headed.base_model
    result = base.load_state_dict(model.state_dict(), strict=False)
    if result.missing_keys:
        raise UnsupportedArchitectureError(
            f"model: its weights do not fill {type(base).__name__}; missing {result.missing_keys[:5]}"
        )
    prefix = getattr(headed, "base_model_prefix", "")
    new = sorted(n for n in dict(headed.named_parameters()) if not n.startswith(prefix + "."))
    return headed, (
        f"{type(headed).__name__} built around the given {type(model).__name__}; parameters outside the base "
        f"model are random-init (seed {seed}) unless tied to it: {new[:6]}{' …' if len(new) > 6 else ''}"
    )


def _tied_head_around(model: Any, auto: Any, config: Any) -> Any:
    """The head class wrapped around ``model`` itself when every head weight is tied to it, else None.

    The skeleton is built on the meta device (no memory, no initialisation), the given base model
    is put in as its base and the head tied to the input embeddings; if anything is left on the
    meta device (an untied head, a head bias, a head transform), None: the caller builds the head
    with its random-init weights instead. No copy of the base model is made (Gemma 3 270M: 1 GB).
    """
    import torch

    with torch.device("meta"):
        skeleton = auto.from_config(config)
    prefix = str(getattr(skeleton, "base_model_prefix", ""))
    if not prefix or type(getattr(skeleton, prefix, None)) is not type(model):
        return None
    setattr(skeleton, prefix, model)
    skeleton.tie_weights()
    if any(t.is_meta for t in [*skeleton.parameters(), *skeleton.buffers()]):
        return None
    return skeleton.eval()
