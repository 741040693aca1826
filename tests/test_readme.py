"""The README's Python works exactly as written: every ```python block runs, and its printed output
matches the block shown after it; every inline `deadir.<name>(...)` call names something that exists."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import deadir

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```(?:\s*\n\n?[^`]*?```\n(.*?)```)?", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int) -> None:
    code, _expected = BLOCKS[index]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md python block {index}", "exec"), {})
    assert out.getvalue().strip(), "a README example that prints nothing shows nothing"


def test_readme_example_output_is_what_it_prints() -> None:
    code, expected = BLOCKS[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md python block 0", "exec"), {})
    printed = out.getvalue().split()
    shown = expected.split()
    assert printed[-2:] == shown[-2:]  # the classify kinds, exactly
    assert printed[0].split("=")[0] == shown[0].split("=")[0]


@pytest.mark.parametrize("dotted", sorted(set(re.findall(r"`(deadir(?:\.[a-z_]+)+)\(", README))))
def test_readme_inline_calls_exist(dotted: str) -> None:
    obj: object = deadir
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)  # AttributeError here is the README naming something that is not there
    assert callable(obj)
