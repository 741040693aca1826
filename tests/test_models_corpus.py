from __future__ import annotations

import numpy as np
import pytest

from deadir import InputShapeError
from deadir.models.corpus import (
    ByteTokenizer,
    corpus_text,
    shipped_text,
    stdlib_docstrings,
    synthetic_token_ids,
    token_sequences,
)


def test_shipped_corpus_is_real_english_prose() -> None:
    text = shipped_text()
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    assert len(paragraphs) == 30 and len(text) > 8000
    words = text.lower().split()
    assert words.count("the") > 100 and text.isascii()


def test_stdlib_docstrings_are_deterministic_and_large() -> None:
    a = stdlib_docstrings()
    assert a == stdlib_docstrings() and len(a) > 100_000
    assert corpus_text("both").startswith(shipped_text())
    with pytest.raises(InputShapeError, match="source"):
        corpus_text("web")  # type: ignore[arg-type]


def test_token_sequences_are_distinct_with_distinct_first_tokens() -> None:
    ids = token_sequences(ByteTokenizer(128), 60, 32, seed=1).numpy()
    assert ids.shape == (60, 32) and ids.min() >= 0 and ids.max() < 128
    assert len({tuple(r[:4]) for r in ids}) == 60  # no repeated 4-token prefix
    assert len(set(ids[:, 0].tolist())) == 60  # first tokens distinct while the corpus allows
    again = token_sequences(ByteTokenizer(128), 60, 32, seed=1).numpy()
    np.testing.assert_array_equal(ids, again)
    with pytest.raises(InputShapeError, match="distinct windows"):
        token_sequences(ByteTokenizer(128), 10_000, 64, source="shipped")
    with pytest.raises(InputShapeError, match="outside"):
        token_sequences(ByteTokenizer(256), 4, 8, vocab_size=64)


def test_synthetic_ids_never_repeat() -> None:
    ids = synthetic_token_ids(50, 8, 100, seed=0).numpy()
    assert len(set(ids[:, 0].tolist())) == 50
    assert len({tuple(r) for r in ids}) == 50
    small = synthetic_token_ids(9, 2, 3, seed=0).numpy()  # all 3² sequences, none twice
    assert len({tuple(r) for r in small}) == 9
    with pytest.raises(InputShapeError):
        synthetic_token_ids(10, 2, 3)
