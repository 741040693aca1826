"""The benchmark harness: repeated timings, ratio rows, the machine header, JSON and Markdown.

Every speed claim of deadir is a *ratio* of two timings taken in the same process run,
so that a slow or busy machine moves both sides together. A row holds the two sets of
samples (``fast`` and ``slow``); its ratio is reported as

* median: median(slow) / median(fast);
* min:    min(slow) / max(fast)   (the least favourable pairing of the samples);
* max:    max(slow) / min(fast)   (the most favourable pairing).

so the [min, max] band contains every ratio any pair of samples could give. A target
(``>= 100``) is judged on the median; the worst-case band is reported next to it.

Rows that are not ratios (fuzz examples per second, proof seconds per theorem) are
``RateRow``s: a single quantity with min/median/max over repeats. Rows that cannot run
on this machine (no CUDA, a missing branch) are ``SkippedRow``s and say why.

Timings are never asserted anywhere; this module only measures and writes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deadir.report import render_markdown_table, render_table, write_json_atomic, write_text_atomic

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Stats:
    """min / median / max of n > 0 finite, non-negative samples (units of the samples)."""

    n: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise ``samples``.

        Raises:
            ValueError: no samples, or a NaN/infinite/negative sample.
        """
        values = [float(s) for s in samples]
        if not values:
            raise ValueError("samples: need at least one sample")
        bad = [s for s in values if not math.isfinite(s) or s < 0]
        if bad:
            raise ValueError(f"samples: must be finite and >= 0, got {bad[:3]}")
        return cls(n=len(values), min=min(values), median=float(statistics.median(values)), max=max(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Timing:
    """The wall-clock samples (seconds) of one measured callable."""

    label: str
    samples: tuple[float, ...]

    @property
    def stats(self) -> Stats:
        return Stats.of(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "seconds": self.stats.to_dict(), "samples": list(self.samples)}


def time_repeats(
    fn: Callable[[], Any],
    label: str,
    *,
    min_repeats: int = 3,
    max_repeats: int = 50,
    budget_s: float = 5.0,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then time it until it has run at least
    ``min_repeats`` times and either ``max_repeats`` times or ``budget_s`` seconds (timed
    calls only) have passed.

    Raises:
        ValueError: min_repeats < 1, max_repeats < min_repeats, warmup < 0 or budget_s < 0.
    """
    if min_repeats < 1 or max_repeats < min_repeats or warmup < 0 or budget_s < 0:
        raise ValueError(
            f"time_repeats: need 1 <= min_repeats <= max_repeats, warmup >= 0, budget_s >= 0; got "
            f"min_repeats={min_repeats}, max_repeats={max_repeats}, warmup={warmup}, budget_s={budget_s}"
        )
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < min_repeats or (len(samples) < max_repeats and spent < budget_s):
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
    return Timing(label=label, samples=tuple(samples))


@dataclasses.dataclass(frozen=True)
class RatioStats:
    """How many times slower ``slow`` is than ``fast``: median and the worst/best pairing."""

    min: float
    median: float
    max: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def ratio_stats(slow: Stats, fast: Stats) -> RatioStats:
    """median(slow)/median(fast), min(slow)/max(fast), max(slow)/min(fast).

    A zero fast timing (a clock that did not tick) gives an infinite ratio.
    """

    def div(a: float, b: float) -> float:
        return a / b if b > 0 else math.inf

    return RatioStats(min=div(slow.min, fast.max), median=div(slow.median, fast.median), max=div(slow.max, fast.min))


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal for a row's median value: ``op`` is ">=" (at least ``value``) or "<=" (at most)."""

    op: str
    value: float
    text: str = ""

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"Target.op: must be '>=' or '<=', got {self.op!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"Target.value: must be finite and > 0, got {self.value!r}")

    def met(self, x: float) -> bool:
        return x >= self.value if self.op == ">=" else x <= self.value

    def margin(self, x: float) -> float:
        """Factor by which ``x`` beats (> 1) or misses (< 1) the target."""
        if self.op == ">=":
            return x / self.value
        return self.value / x if x > 0 else math.inf

    def describe(self) -> str:
        return f"{self.op} {num(self.value)}" + (f" ({self.text})" if self.text else "")

    def verdict(self, x: float) -> str:
        m = self.margin(x)
        if self.met(x):
            return f"met ({num(m)}× margin)"
        return f"MISSED by {num(1.0 / m)}×"

    def to_dict(self, x: float) -> dict[str, Any]:
        return {"op": self.op, "value": self.value, "text": self.text, "met": self.met(x), "margin": self.margin(x)}


@dataclasses.dataclass(frozen=True)
class RatioRow:
    """One ratio: how many times faster ``fast`` is than ``slow``, both timed in this run."""

    id: str
    item: int
    title: str
    fast: Timing
    slow: Timing
    target: Target | None = None
    notes: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> RatioStats:
        return ratio_stats(self.slow.stats, self.fast.stats)

    @property
    def status(self) -> str:
        if self.target is None:
            return "reported"
        return self.target.verdict(self.ratio.median)

    def to_dict(self) -> dict[str, Any]:
        r = self.ratio
        return {
            "kind": "ratio",
            "id": self.id,
            "item": self.item,
            "title": self.title,
            "fast": self.fast.to_dict(),
            "slow": self.slow.to_dict(),
            "ratio": r.to_dict(),
            "target": None if self.target is None else self.target.to_dict(r.median),
            "status": self.status,
            "notes": self.notes,
            "extra": self.extra,
        }


@dataclasses.dataclass(frozen=True)
class RateRow:
    """A single measured quantity (e.g. examples/s, seconds per theorem) with min/median/max."""

    id: str
    item: int
    title: str
    unit: str
    values: tuple[float, ...]
    notes: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def stats(self) -> Stats:
        return Stats.of(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "rate",
            "id": self.id,
            "item": self.item,
            "title": self.title,
            "unit": self.unit,
            "stats": self.stats.to_dict(),
            "values": list(self.values),
            "notes": self.notes,
            "extra": self.extra,
        }


@dataclasses.dataclass(frozen=True)
class SkippedRow:
    """A benchmark that did not run here, and why."""

    id: str
    item: int
    title: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "skipped", "id": self.id, "item": self.item, "title": self.title, "reason": self.reason}


Row = RatioRow | RateRow | SkippedRow


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_header(root: Path | None = None) -> dict[str, Any]:
    """Date (UTC), machine, load, and the versions the numbers were taken with."""
    try:
        import torch

        threads: int | None = torch.get_num_threads()
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # torch is a dependency, but the header must never be the thing that fails
        threads, cuda = None, None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": _cpu_model(),
            "cores_usable": affinity,
            "memory_gib": _memory_gib(),
            "platform": platform.platform(),
            "torch_threads": threads,
            "cuda_device": cuda,
            "load_average_1_5_15": load,
        },
        "versions": {
            "python": platform.python_version(),
            **{p: _package_version(p) for p in ("deadir", "numpy", "torch", "transformers", "safetensors", "gguf",
                                                "sympy", "hypothesis")},
            "deadir_commit": _git_commit(root or Path.cwd()),
        },
        "argv": sys.argv[1:],
    }


# --------------------------------------------------------------------------- rendering


def _seconds(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.3g} µs"
    if x < 1.0:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s"


def num(x: float) -> str:
    """A ratio or rate for people: thousands separated, 3 significant digits below 100."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _ratio_text(r: RatioStats) -> str:
    return f"{num(r.median)}× [{num(r.min)}–{num(r.max)}]"


RATIO_HEADERS = ("#", "benchmark", "fast side (median)", "slow side (median)", "ratio median [min–max]", "n fast/slow",
                 "target", "status")
RATE_HEADERS = ("#", "benchmark", "median", "min", "max", "n", "unit")


def ratio_table_rows(rows: Sequence[Row]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for r in rows:
        if isinstance(r, RatioRow):
            out.append([
                r.item, r.title, f"{r.fast.label}: {_seconds(r.fast.stats.median)}",
                f"{r.slow.label}: {_seconds(r.slow.stats.median)}", _ratio_text(r.ratio),
                f"{r.fast.stats.n}/{r.slow.stats.n}", r.target.describe() if r.target else "-", r.status,
            ])
        elif isinstance(r, SkippedRow) and not r.id.startswith("rate:"):
            out.append([r.item, r.title, "-", "-", "-", "-", "-", f"skipped: {r.reason}"])
    return out


def rate_table_rows(rows: Sequence[Row]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for r in rows:
        if isinstance(r, RateRow):
            s = r.stats
            out.append([r.item, r.title, num(s.median), num(s.min), num(s.max), s.n, r.unit])
        elif isinstance(r, SkippedRow) and r.id.startswith("rate:"):
            out.append([r.item, r.title, "-", "-", "-", 0, f"skipped: {r.reason}"])
    return out


def _header_line(header: dict[str, Any]) -> str:
    m, v = header["machine"], header["versions"]
    return (
        f"{header['date_utc']} · {m['cpu']}, {m['cores_usable']} usable cores, {m['memory_gib']} GiB, "
        f"load {m['load_average_1_5_15']} · Python {v['python']}, numpy {v['numpy']}, torch {v['torch']}, "
        f"transformers {v['transformers']} · deadir {v['deadir']} ({v['deadir_commit']})"
    )


def render_markdown(header: dict[str, Any], rows: Sequence[Row], total_s: float) -> str:
    """The results as Markdown: a header line, the ratio table, the rate table."""
    parts = [f"Measured {_header_line(header)}; whole run {total_s:.0f} s.", ""]
    ratio_rows = ratio_table_rows(rows)
    if ratio_rows:
        parts += [render_markdown_table(RATIO_HEADERS, ratio_rows), ""]
    rate_rows = rate_table_rows(rows)
    if rate_rows:
        parts += [render_markdown_table(RATE_HEADERS, rate_rows), ""]
    notes = [f"- **{r.title}**: {r.notes}" for r in rows if isinstance(r, (RatioRow, RateRow)) and r.notes]
    if notes:
        parts += ["Notes:", "", *notes, ""]
    return "\n".join(parts)


def render_readme_section(header: dict[str, Any], rows: Sequence[Row], total_s: float) -> str:
    """A compact "Performance" section for the README: ratio, target and status of every row."""
    m = header["machine"]
    parts = [
        "## Performance",
        "",
        f"Measured {header['date_utc']} on {m['cpu']} ({m['cores_usable']} cores, shared, load average "
        f"{m['load_average_1_5_15']}), one thread per library, CPU only; `nox -s bench` took {total_s:.0f} s. "
        "Each ratio is slow side / fast side, both timed in the same run: median over repeats, and in brackets "
        "the least and most favourable pairing of samples. Full table: `build/bench/results.md`.",
        "",
    ]
    table = []
    for r in rows:
        if isinstance(r, RatioRow):
            table.append([r.item, r.title, f"{_seconds(r.fast.stats.median)} vs {_seconds(r.slow.stats.median)}",
                          _ratio_text(r.ratio), r.target.describe() if r.target else "-", r.status])
        elif isinstance(r, RateRow):
            table.append([r.item, r.title, f"{num(r.stats.median)} {r.unit}", "-", "-", "reported"])
        else:
            table.append([r.item, r.title, "-", "-", "-", f"skipped: {r.reason}"])
    parts += [render_markdown_table(("#", "benchmark", "median", "ratio", "target", "status"), table), ""]
    return "\n".join(parts)


def render_text(header: dict[str, Any], rows: Sequence[Row], total_s: float) -> str:
    """The results as fixed-width text for the terminal."""
    parts = [_header_line(header), f"whole run {total_s:.0f} s", ""]
    ratio_rows = ratio_table_rows(rows)
    if ratio_rows:
        parts += [render_table(RATIO_HEADERS, ratio_rows, title="ratios (each measured in this run)"), ""]
    rate_rows = rate_table_rows(rows)
    if rate_rows:
        parts += [render_table(RATE_HEADERS, rate_rows, title="rates"), ""]
    return "\n".join(parts)


def results_dict(header: dict[str, Any], rows: Sequence[Row], total_s: float) -> dict[str, Any]:
    return {"header": header, "total_seconds": total_s, "rows": [r.to_dict() for r in rows]}


def write_results(out_dir: str | os.PathLike[str], header: dict[str, Any], rows: Sequence[Row],
                  total_s: float) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out_dir`` (atomically); return both paths."""
    out = Path(out_dir)
    js = write_json_atomic(out / "results.json", results_dict(header, rows, total_s))
    md = write_text_atomic(out / "results.md", render_markdown(header, rows, total_s))
    write_text_atomic(out / "README-performance.md", render_readme_section(header, rows, total_s))
    return js, md
