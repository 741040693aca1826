"""Options, shared measurement cache and report writing for the integration suite.

Options (``pytest integration ...``):

* ``--checkpoint PATH`` (repeatable; also ``DEADIR_EXTRA_CHECKPOINTS``, os.pathsep-separated):
  a further local checkpoint to measure: a folder, a ``.gguf`` file, or a Hugging Face id
  resolved from the local cache only (``local_files_only=True``; nothing is downloaded).
* ``--gpu-as-cpu``: run the ``gpu``-marked tests on CPU at reduced width (otherwise they
  skip, with the reason, when CUDA is absent).
* ``--tokens N``: measured tokens per real checkpoint (default 2048, bounded for CI; also
  ``DEADIR_TOKENS``). Random-init tiny models use ``RANDOM_INIT_TOKENS``.
* ``--report-dir DIR``: where report.md / report.json / spectra go (default build/integration).

Each model is loaded and measured once per session (the first test that needs it), and
every claim test reads the cached result. At the end of the session the report is
written from every model measured, whatever the selection.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from integration import claims
from integration.harness import ModelResult

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class Store:
    """Session cache: model name -> measured result (or the error that prevented it)."""

    def __init__(self) -> None:
        self.results: dict[str, ModelResult] = {}
        self.errors: dict[str, str] = {}
        self.expected_drops: dict[str, tuple[int, ...]] = {}
        self.expect_more_near_null: dict[str, bool] = {}
        self.expect_deeper: dict[str, bool] = {}
        # Extra report sections (title -> rows of dicts), e.g. the Fisher numbers of test_fisher_real.
        self.sections: dict[str, list[dict[str, Any]]] = {}
        self.outcomes: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
        self.started = time.time()
        self.report_dir = REPO / "build" / "integration"
        self.title = "deadir integration report (CPU)"

    def get(self, name: str, compute: Callable[[], list[ModelResult]]) -> ModelResult:
        """The cached result for ``name``; ``compute`` measures it (and any sibling rows) on first use.

        Raises:
            KeyError: ``compute`` returned no row called ``name`` (row names must be unique in a session).
        """
        if name in self.errors:
            pytest.fail(f"{name}: measurement failed earlier in this session: {self.errors[name]}")
        if name not in self.results:
            try:
                for res in compute():
                    if res.name in self.results:
                        raise KeyError(f"two models share the row name {res.name!r}")
                    self.results[res.name] = res
            except Exception as exc:
                self.errors[name] = f"{type(exc).__name__}: {exc}"
                raise
        return self.results[name]


STORE_KEY = pytest.StashKey[Store]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deadir-integration")
    group.addoption("--checkpoint", action="append", default=[], metavar="PATH",
                    help="extra local checkpoint: folder, .gguf file, or HF id from the local cache (repeatable)")
    group.addoption("--gpu-as-cpu", action="store_true", default=False,
                    help="run gpu-marked tests on CPU at reduced width")
    group.addoption("--tokens", type=int, default=int(os.environ.get("DEADIR_TOKENS", "2048")),
                    help="measured tokens per real checkpoint (default 2048)")
    group.addoption("--report-dir", default=None, help="report folder (default build/integration)")


def pytest_configure(config: pytest.Config) -> None:
    store = Store()
    if config.getoption("--report-dir", None):
        store.report_dir = Path(config.getoption("--report-dir")).resolve()
    config.stash[STORE_KEY] = store


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _model_of(item: Any) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    name = callspec.params.get("name")
    return str(name) if name is not None else None


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
    if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
        model = _model_of(item)
        if model is None:
            return
        store = item.config.stash[STORE_KEY]
        outcome = "passed" if call.excinfo is None else (
            "skipped" if call.excinfo.errisinstance(pytest.skip.Exception) else "failed")
        store.outcomes[outcome][model] += 1


@pytest.fixture(scope="session")
def store(request: pytest.FixtureRequest) -> Store:
    return request.config.stash[STORE_KEY]


@pytest.fixture(scope="session")
def tokens(request: pytest.FixtureRequest) -> int:
    n = int(request.config.getoption("--tokens"))
    if n < 256:
        raise pytest.UsageError(f"--tokens: need at least 256 measured tokens, got {n}")
    return n


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    store = session.config.stash.get(STORE_KEY, None)
    if store is None or not (store.results or store.sections):
        return
    from integration import report

    results = sorted(store.results.values(), key=lambda m: (m.source == "random-init", m.name))
    if results and all("width" in m.source for m in results):  # only the gpu suite ran
        on_cuda = any("cuda" in m.source for m in results)
        store.title = ("deadir GPU report (published widths, CUDA)" if on_cuda
                       else "deadir gpu suite on CPU (--gpu-as-cpu, reduced widths)")
    verdicts = {m.name: claims.all_verdicts(m, store.expected_drops.get(m.name, ()),
                                            store.expect_more_near_null.get(m.name, True),
                                            store.expect_deeper.get(m.name, True)) for m in results}
    meta = {
        "suite_seconds": round(time.time() - store.started, 1),
        "tokens_option": session.config.getoption("--tokens"),
        "errors": dict(store.errors),
        "pytest_exitstatus": int(exitstatus),
    }
    path = report.write_report(results, verdicts, store.report_dir, title=store.title, meta=meta,
                               outcomes={k: dict(v) for k, v in store.outcomes.items()}, sections=store.sections)
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(f"deadir integration report: {path}")
