"""A model and its random-init twin measured on the same inputs (:func:`verify_against_init`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from deadir.models import find_norms, random_init_like
from deadir.report import render_table
from deadir.verify.engine import verify
from deadir.verify.report import VerifyReport

__all__ = ["InitComparison", "verify_against_init"]


@dataclasses.dataclass(frozen=True)
class InitComparison:
    """A model and its random-init twin measured on the same inputs.

    ``deepening`` per site = rayleigh_rel(init) / rayleigh_rel(trained): how many times
    deeper (relative to λmax) the eigenvalue along v sits in the given model; None when
    either is undefined or the trained value is 0. ``near_null`` gives, per tolerance,
    (count in model, count at init).
    """

    trained: VerifyReport
    init: VerifyReport
    seed: int

    def rows(self) -> list[dict[str, Any]]:
        """One dict per site measured in both."""
        init_by_path = {s.site.path: s for s in self.init.sites}
        out = []
        for s in self.trained.sites:
            i = init_by_path.get(s.site.path)
            if i is None:
                continue
            deep = None
            if s.rayleigh_rel is not None and i.rayleigh_rel is not None and s.rayleigh_rel != 0:
                deep = i.rayleigh_rel / s.rayleigh_rel
            out.append(
                {
                    "path": s.site.path,
                    "kind": s.site.spec.kind,
                    "role": s.site.role,
                    "rayleigh_rel": s.rayleigh_rel,
                    "rayleigh_rel_init": i.rayleigh_rel,
                    "eigval_along_direction": s.eigval_along_direction,
                    "eigval_along_direction_init": i.eigval_along_direction,
                    "deepening": deep,
                    "near_null": {f"{t:g}": [s.near_null[t], i.near_null[t]] for t in self.trained.tolerances},
                    # deepening of the near-null count: model / init (None when init has none)
                    "near_null_deepening": {
                        f"{t:g}": (s.near_null[t] / i.near_null[t] if i.near_null[t] else None)
                        for t in self.trained.tolerances
                    },
                    "at_floor": s.at_floor,
                    "at_floor_init": i.at_floor,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready comparison (both full reports included)."""
        return {
            "seed": self.seed,
            "comparison": self.rows(),
            "trained": self.trained.to_dict(),
            "init": self.init.to_dict(),
        }

    def table(self) -> str:
        """Side-by-side table (plain text)."""
        tols = self.trained.tolerances
        headers = ("site", "kind", "rayleigh_rel", "at init", "deepening", *(f"null@{t:g} (model/init)" for t in tols))
        rows = [
            (
                r["path"],
                r["kind"],
                r["rayleigh_rel"],
                r["rayleigh_rel_init"],
                r["deepening"],
                *(_count_pair(r["near_null"][f"{t:g}"], r["near_null_deepening"][f"{t:g}"]) for t in tols),
            )
            for r in self.rows()
        ]
        return render_table(headers, rows, title=f"model vs random init (seed {self.seed}), same inputs")


def _count_pair(counts: list[int], ratio: float | None) -> str:
    """ "model/init (×ratio)" for one near-null threshold."""
    return f"{counts[0]}/{counts[1]}" + (f" (×{ratio:.3g})" if ratio is not None else "")


def verify_against_init(model: Any, inputs: Any, *, seed: int = 0, **kwargs: Any) -> InitComparison:
    """:func:`verify` on ``model`` and on :func:`deadir.random_init_like` (same inputs, same options).

    Raises:
        as :func:`verify` and :func:`deadir.random_init_like`.
    """
    trained = verify(model, inputs, **kwargs)
    twin = random_init_like(model, seed=seed)
    if kwargs.get("sites") is not None:
        paths = {s.path for s in kwargs["sites"]}
        kwargs = {**kwargs, "sites": [s for s in find_norms(twin) if s.path in paths]}
    init = verify(twin, inputs, **kwargs)
    return InitComparison(trained=trained, init=init, seed=seed)
