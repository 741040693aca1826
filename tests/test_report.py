from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deadir.report import dumps, fmt, render_markdown_table, render_table, write_json_atomic, write_text_atomic


def test_fmt() -> None:
    assert fmt(None) == "-" and fmt(True) == "yes" and fmt(np.bool_(False)) == "no"
    assert fmt(1.5e-15) == "1.50e-15" and fmt(0.25) == "0.25" and fmt(float("inf")) == "inf"
    assert fmt(3) == "3"


def test_tables() -> None:
    text = render_table(("a", "bb"), [(1, 2.0), ("xyz", None)], title="T")
    assert text.splitlines()[0] == "T" and "xyz" in text and "-" in text
    md = render_markdown_table(("a",), [("x|y",)])
    assert md.splitlines()[1] == "|---|" and "x\\|y" in md


def test_strict_json_of_numpy_and_non_finite() -> None:
    data = json.loads(dumps({"a": np.float64(1.0), "b": np.arange(2), "c": float("nan"), "d": (np.int64(3),),
                             "e": np.bool_(True)}))
    assert data == {"a": 1.0, "b": [0, 1], "c": "nan", "d": [3], "e": True}


def test_atomic_writes(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "sub" / "r.json", {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "r.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []
