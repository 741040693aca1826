"""Real English text for verifying language models offline, and its tokenisation into distinct sequences.

Two sources (see ``deadir/data/CORPUS_LICENSE.md``):

* ``shipped`` — ``deadir/data/corpus.txt``, original prose written for deadir (Apache-2.0),
  about 8.6 kB, 30 paragraphs;
* ``stdlib`` — docstrings of a fixed list of Python standard-library modules, gathered at
  run time from the running interpreter (PSF licence; never shipped), some hundreds of kB.

:func:`token_sequences` cuts the tokenised text into *distinct* sequences: non-overlapping
windows, none sharing its first tokens with another. A causal model maps equal prefixes to
equal hidden states, so repeated prefixes shrink the number of distinct activation rows and
fake near-null directions; see :func:`synthetic_token_ids` for the fallback distribution.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from importlib import resources
from typing import Any, Literal

import numpy as np

from deadir.errors import InputShapeError

Source = Literal["shipped", "stdlib", "both"]

STDLIB_MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "concurrent.futures",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "email", "enum", "fractions", "functools", "gettext", "glob", "gzip", "hashlib", "heapq", "html",
    "http.client", "inspect", "io", "ipaddress", "itertools", "json", "logging", "mailbox", "math",
    "mimetypes", "numbers", "operator", "os", "pathlib", "pickle", "pprint", "queue", "random", "re",
    "sched", "secrets", "shlex", "shutil", "socket", "sqlite3", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "typing", "unittest",
    "urllib.parse", "uuid", "warnings", "weakref", "zipfile",
)
"""Standard-library modules whose docstrings :func:`stdlib_docstrings` gathers, in this order."""


def shipped_text() -> str:
    """The prose shipped in ``deadir/data/corpus.txt`` (paragraphs separated by blank lines)."""
    return resources.files("deadir").joinpath("data/corpus.txt").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=4)
def stdlib_docstrings(min_chars: int = 200) -> str:
    """Docstrings (≥ ``min_chars`` characters) of :data:`STDLIB_MODULES` and their public members.

    Deterministic for a given Python version: modules in the listed order, members sorted
    by name, exact duplicates dropped. Modules missing from the interpreter are skipped.
    """
    seen: set[str] = set()
    parts: list[str] = []

    def add(obj: Any) -> None:
        if inspect.ismodule(obj) and obj is not module:
            return
        doc = inspect.getdoc(obj)
        if doc and len(doc) >= min_chars and doc not in seen:
            seen.add(doc)
            parts.append(doc)

    module: Any = None
    # Importing some modules, and touching deprecated aliases (typing.io, typing.re) or their
    # attributes, emits DeprecationWarnings that say nothing about the text gathered here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in STDLIB_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            add(module)
            for attr in sorted(vars(module)):
                if attr.startswith("_"):
                    continue
                obj = vars(module)[attr]
                if getattr(obj, "__module__", None) != module.__name__:
                    continue
                add(obj)
                if inspect.isclass(obj):
                    for meth in sorted(vars(obj)):
                        if not meth.startswith("_"):
                            add(vars(obj)[meth])
    return "\n\n".join(parts)


def corpus_text(source: Source = "both") -> str:
    """The corpus text of ``source`` ("shipped", "stdlib" or "both": shipped first).

    Raises:
        InputShapeError: unknown source.
    """
    if source == "shipped":
        return shipped_text()
    if source == "stdlib":
        return stdlib_docstrings()
    if source == "both":
        return shipped_text() + "\n\n" + stdlib_docstrings()
    raise InputShapeError(f"source: expected 'shipped', 'stdlib' or 'both', got {source!r}")


class ByteTokenizer:
    """UTF-8 bytes as token ids, folded into ``vocab_size`` (id = byte mod vocab_size).

    For models without an offline tokenizer but with a small vocabulary (the tiny random-init
    configs have 128 ids: every ASCII character keeps its own id). Not a model's tokenizer:
    it gives real text at character level.
    """

    def __init__(self, vocab_size: int, *, offset: int = 0) -> None:
        if vocab_size < 2 or offset < 0 or offset >= vocab_size:
            raise InputShapeError(f"vocab_size={vocab_size}, offset={offset}: need vocab_size ≥ 2, 0 ≤ offset < vocab")
        self.vocab_size = vocab_size
        self.offset = offset

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text`` (``add_special_tokens`` is accepted for API compatibility and ignored)."""
        span = self.vocab_size - self.offset
        return [self.offset + (b % span) for b in text.encode("utf-8")]


def token_sequences(
    tokenizer: Any,
    n_sequences: int,
    seq_len: int,
    *,
    seed: int = 0,
    source: Source = "both",
    distinct_prefix: int = 4,
    vocab_size: int | None = None,
) -> Any:
    """``n_sequences`` distinct token sequences of length ``seq_len`` (int64 tensor (n, seq_len)) from the corpus.

    ``tokenizer`` is anything with ``encode(text, add_special_tokens=False) -> list[int]``
    (Hugging Face tokenizers, :class:`ByteTokenizer`). The text is tokenised paragraph by
    paragraph, joined into one stream, cut into non-overlapping windows, and windows whose
    first ``min(distinct_prefix, seq_len)`` tokens repeat an earlier window's are dropped;
    the remaining windows are shuffled with ``seed`` and those with a first token not yet
    used are taken first.

    Raises:
        InputShapeError: non-positive sizes; token ids outside ``[0, vocab_size)``; or the
            corpus holds fewer distinct windows than asked for (the message says how many).
    """
    import torch

    if n_sequences < 1 or seq_len < 1:
        raise InputShapeError(f"n_sequences={n_sequences}, seq_len={seq_len}: both must be ≥ 1")
    stream: list[int] = []
    for paragraph in corpus_text(source).split("\n\n"):
        text = " ".join(paragraph.split())
        if text:
            stream.extend(int(t) for t in tokenizer.encode(text + "\n", add_special_tokens=False))
    ids = np.asarray(stream, dtype=np.int64)
    if vocab_size is not None and ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise InputShapeError(f"tokenizer: produced ids outside [0, {vocab_size}) (max {int(ids.max())})")
    windows = ids[: ids.size // seq_len * seq_len].reshape(-1, seq_len)
    k = min(distinct_prefix, seq_len)
    _, first = np.unique(windows[:, :k], axis=0, return_index=True)
    windows = windows[np.sort(first)]
    if windows.shape[0] < n_sequences:
        raise InputShapeError(
            f"corpus ({source}): only {windows.shape[0]} distinct windows of {seq_len} tokens, "
            f"{n_sequences} asked for; ask for fewer tokens or shorter sequences"
        )
    order = np.random.default_rng(seed).permutation(windows.shape[0])
    # windows whose first token is new come first: a causal model maps equal first tokens to
    # equal rows at position 0, so distinct first tokens keep every position's rows distinct
    seen: dict[int, int] = {}
    rank = np.empty(order.size, dtype=np.int64)
    for j, w in enumerate(order):
        tok = int(windows[w, 0])
        rank[j] = seen.get(tok, 0)
        seen[tok] = rank[j] + 1
    order = order[np.argsort(rank, kind="stable")][:n_sequences]
    return torch.from_numpy(np.ascontiguousarray(windows[order]))


def synthetic_token_ids(n_sequences: int, seq_len: int, vocab_size: int, *, seed: int = 0, low: int = 0) -> Any:
    """The documented fallback text distribution: i.i.d. uniform ids in ``[low, vocab_size)``.

    Every sequence starts with a different first token whenever ``n_sequences ≤ vocab_size − low``
    (drawn without replacement), and no two sequences are equal: no repeated prefixes.

    Raises:
        InputShapeError: sizes < 1 or an empty id range.
    """
    import torch

    span = vocab_size - low
    if n_sequences < 1 or seq_len < 1 or span < 2:
        raise InputShapeError(f"n_sequences={n_sequences}, seq_len={seq_len}, id range [{low}, {vocab_size}): bad")
    if span**seq_len < n_sequences:
        raise InputShapeError(f"only {span}^{seq_len} distinct sequences exist; {n_sequences} asked for")
    rng = np.random.default_rng(seed)
    ids = rng.integers(low, vocab_size, size=(n_sequences, seq_len))
    first_fixed = n_sequences <= span
    if first_fixed:
        ids[:, 0] = low + rng.permutation(span)[:n_sequences]
    while True:  # redraw exact duplicates (only likely for a tiny span and seq_len)
        _, first = np.unique(ids, axis=0, return_index=True)
        dup = np.setdiff1d(np.arange(n_sequences), first)
        if dup.size == 0:
            break
        # with distinct first tokens no two rows can be equal, so this only runs when
        # first_fixed is False (or seq_len == 1): redraw the whole row
        ids[dup] = rng.integers(low, vocab_size, size=(dup.size, seq_len))
    return torch.from_numpy(ids.astype(np.int64))
