"""The baseline gate: what changed between a scan and a previous ``deadir scan --json``."""

from __future__ import annotations

import dataclasses
import math
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from deadir.arrays import FloatArray
from deadir.errors import CheckpointError, DeadirError, InputShapeError
from deadir.io.limits import Limits, load_json
from deadir.scan.report import ScanReport

__all__ = [
    "DEFAULT_MAX_ANGLE", "MAX_BASELINE_BYTES", "MAX_JSON_DEPTH", "BaselineError", "Change", "compare_to_baseline",
    "load_baseline", "site_angle",
]

DEFAULT_MAX_ANGLE = 1e-3
"""Baseline gate: a kernel direction that turned by more than 1e-3 rad (0.057°) has changed.
Why this value: the same γ gives angle 0 exactly (JSON round-trips float64). Perturbing every
γᵢ by a relative error ≤ δ turns v = γ⁻¹/‖γ⁻¹‖ by at most ≈ δ, so re-saving γ in float16
(δ = 2⁻¹¹ ≈ 4.9e-4) stays under the threshold while a bfloat16 cast (2⁻⁹ ≈ 2e-3) or any
real edit of γ is flagged."""


class BaselineError(DeadirError, ValueError):
    """A ``--baseline`` file is missing, not JSON, or not a scan report."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference between a scan and its baseline.

    ``what`` is "added", "removed", "kind", "kernel", "size", "degenerate" or "direction";
    ``angle`` is the angle in radians between the two directions (direction changes only).
    """

    path: str
    what: str
    detail: str
    angle: float | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.what}: {self.detail}"


def site_angle(u: Sequence[float] | FloatArray, v: Sequence[float] | FloatArray) -> float:
    """Angle in radians (in [0, π/2]) between the lines spanned by unit vectors u and v.

    Computed as 2·atan2(min(‖u−v‖, ‖u+v‖), max(...)), accurate also for tiny angles
    (arccos of a cosine near 1 loses half the digits).
    """
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    minus, plus = float(np.linalg.norm(a - b)), float(np.linalg.norm(a + b))
    return 2.0 * math.atan2(min(minus, plus), max(minus, plus))


MAX_BASELINE_BYTES = 256 * 2**20
"""Largest baseline file read (256 MiB: a scan report of a 1,000-site, 16k-wide model is ~200 MB of JSON)."""
MAX_JSON_DEPTH = 32
"""Deepest JSON nesting accepted in a baseline (a scan report nests 4 levels)."""
UNIT_NORM_TOL = 1e-6
"""A stored kernel direction must have |‖v‖ − 1| ≤ this (JSON round-trips float64 exactly; 1e-6 admits
a report written by another tool at float32 precision, and nothing that is not a unit vector)."""


def load_baseline(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a previous ``deadir scan --json`` output; fails closed.

    Only a regular file (or a symlink to one) of at most :data:`MAX_BASELINE_BYTES` is opened (a FIFO
    or device is refused without blocking); JSON nesting beyond :data:`MAX_JSON_DEPTH` is refused
    before parsing; NaN/Infinity literals are refused; every site must have the schema, finite
    values and a unit-norm direction of length ``d``.

    Raises:
        BaselineError: the file is missing, not a regular file, too large, not JSON, too deep, or not a
            valid scan report (names the problem).
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError as exc:
        raise BaselineError(f"{p}: baseline file not found") from exc
    except OSError as exc:
        raise BaselineError(f"{p}: baseline cannot be read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise BaselineError(f"{p}: baseline is not a regular file (a FIFO, device or folder is never opened)")
    if st.st_size > MAX_BASELINE_BYTES:
        raise BaselineError(f"{p}: baseline is {st.st_size} bytes, over the {MAX_BASELINE_BYTES}-byte limit")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(MAX_BASELINE_BYTES + 1)
        raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{p}: baseline cannot be read as UTF-8 text ({exc})") from exc
    try:
        data = load_json(raw, p, "baseline", Limits(max_json_depth=MAX_JSON_DEPTH, max_json_bytes=MAX_BASELINE_BYTES))
    except CheckpointError as exc:  # too deep, huge integers, NaN/Infinity, not JSON: the gate fails closed
        raise BaselineError(f"{p}: baseline refused: {exc}") from exc
    _validate_report_dict(data, str(p))
    return cast(dict[str, Any], data)


_KINDS = frozenset({"layernorm", "rmsnorm", "groupnorm", "scale-then-centre", "affine-only"})


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _validate_report_dict(data: Any, where: str) -> None:
    if not isinstance(data, dict) or data.get("deadir_scan") != 1 or not isinstance(data.get("sites"), list):
        raise BaselineError(f"{where}: not a deadir scan report (expected the output of `deadir scan --json`)")
    seen: set[str] = set()
    for i, s in enumerate(data["sites"]):
        if not isinstance(s, dict):
            raise BaselineError(f"{where}: sites[{i}] is not an object")
        for key, types in (("path", str), ("kind", str), ("kernel_predicted", bool), ("d", int),
                           ("weight_offset", (int, float))):  # fmt: skip
            if not isinstance(s.get(key), types):
                raise BaselineError(f"{where}: sites[{i}] lacks a valid {key!r}")
        if s["kind"] not in _KINDS:
            raise BaselineError(f"{where}: sites[{i}] ({s['path']}) has unknown kind {s['kind']!r}")
        if s["d"] < 1:
            raise BaselineError(f"{where}: sites[{i}] ({s['path']}) has d = {s['d']}")
        if not _finite_number(s["weight_offset"]):
            raise BaselineError(f"{where}: sites[{i}] ({s['path']}) has a non-finite weight_offset")
        degenerate = s.get("degenerate")
        if degenerate is not None and (
            not isinstance(degenerate, list)
            or not all(isinstance(j, int) and not isinstance(j, bool) and 0 <= j < s["d"] for j in degenerate)
        ):  # fmt: skip
            raise BaselineError(f"{where}: sites[{i}] ({s['path']}) has malformed degenerate indices")
        direction = s.get("direction")
        if direction is not None:
            if not isinstance(direction, list) or len(direction) != s["d"] or not all(map(_finite_number, direction)):
                raise BaselineError(f"{where}: sites[{i}] ({s['path']}) has a malformed direction "
                                    "(not d finite numbers)")  # fmt: skip
            norm = math.sqrt(math.fsum(float(x) ** 2 for x in direction))
            if abs(norm - 1.0) > UNIT_NORM_TOL:
                raise BaselineError(f"{where}: sites[{i}] ({s['path']}) direction has norm {norm:.6g}, "
                                    "not a unit vector")  # fmt: skip
        elif s["kernel_predicted"] and s["kind"] == "layernorm" and not degenerate:
            raise BaselineError(f"{where}: sites[{i}] ({s['path']}) predicts a γ⁻¹ kernel but stores no direction")
        if s["path"] in seen:
            raise BaselineError(f"{where}: site {s['path']!r} appears twice")
        seen.add(s["path"])


def compare_to_baseline(
    current: ScanReport | Mapping[str, Any], baseline: Mapping[str, Any], *, max_angle: float = DEFAULT_MAX_ANGLE
) -> list[Change]:
    """Every site whose normalisation changed between ``baseline`` and ``current``.

    Flags sites added or removed, a changed kind (including Gemma's (1 + w) offset), a
    changed kernel presence, a β that appeared or vanished, a changed size, changed zero-scale indices, and a kernel
    direction that turned by more than ``max_angle`` radians. An empty list means no change.

    Raises:
        BaselineError: either side is not a scan report.
        InputShapeError: max_angle not in (0, π/2].
    """
    if not (math.isfinite(max_angle) and 0.0 < max_angle <= math.pi / 2):
        raise InputShapeError(f"max_angle: must lie in (0, π/2] radians, got {max_angle!r}")
    cur = current.to_dict() if isinstance(current, ScanReport) else dict(current)
    _validate_report_dict(cur, "current scan")
    _validate_report_dict(baseline, "baseline")
    old = {s["path"]: s for s in baseline["sites"]}
    new = {s["path"]: s for s in cur["sites"]}
    changes: list[Change] = []
    for path in old:
        if path not in new:
            changes.append(Change(path, "removed", f"{old[path]['kind']} site no longer present"))
    for path, s in new.items():
        if path not in old:
            changes.append(Change(path, "added", f"new {s['kind']} site"))
            continue
        o = old[path]
        if (o["kind"], float(o["weight_offset"])) != (s["kind"], float(s["weight_offset"])):
            changes.append(Change(path, "kind", f"{_kind_label(o)} -> {_kind_label(s)}"))
        if o["kernel_predicted"] != s["kernel_predicted"]:
            changes.append(Change(path, "kernel", "kernel predicted -> no kernel" if o["kernel_predicted"]
                                  else "no kernel -> kernel predicted"))  # fmt: skip
        if (o.get("bias_name") is None) != (s.get("bias_name") is None):
            # With the config unchanged the kind comes from the architecture table, so a LayerNorm
            # swapped for an RMSNorm in the model code shows in the tensors only as a vanished β.
            changes.append(Change(path, "bias", "β present -> absent (norm swapped for a bias-free one, "
                                  "e.g. RMSNorm?)" if o.get("bias_name") is not None else "β absent -> present"))
        if o["d"] != s["d"]:
            changes.append(Change(path, "size", f"d {o['d']} -> {s['d']}"))
            continue
        if sorted(o.get("degenerate") or []) != sorted(s.get("degenerate") or []):
            changes.append(Change(path, "degenerate", f"zero scales {o.get('degenerate')} -> {s.get('degenerate')}"))
        if o.get("direction") is not None and s.get("direction") is not None:
            angle = site_angle(o["direction"], s["direction"])
            if angle > max_angle:
                changes.append(Change(path, "direction", f"kernel direction turned by {angle:.3g} rad "
                                      f"(> {max_angle:g})", angle))  # fmt: skip
    return changes


def _kind_label(s: Mapping[str, Any]) -> str:
    return str(s["kind"]) + (f" (γ = w + {float(s['weight_offset']):g})" if float(s["weight_offset"]) else "")
