"""deadir.verify.report: the JSON and table renderings of a VerifyReport."""

from __future__ import annotations

import json

from deadir.report import dumps
from deadir.verify import NEAR_NULL_TOLERANCES


def test_report_json_and_tables(gpt2_report) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(dumps(gpt2_report.to_dict()))
    assert d["forward_dtype"] == "float32" and len(d["sites"]) == 5 and len(d["blocks"]) == 3
    assert set(d["sites"][0]["near_null"]) == {f"{t:g}" for t in NEAR_NULL_TOLERANCES}
    text = gpt2_report.render()
    assert "ln_f" in text and "forward float32" in text and "residual stream" in text


def test_verify_is_a_callable_package_not_a_shadowing_function(gpt2_report) -> None:  # type: ignore[no-untyped-def]
    import importlib

    import deadir
    from deadir.verify import VerifyReport
    from deadir.verify import verify as engine_verify

    module = importlib.import_module("deadir.verify")
    assert deadir.verify is module and callable(module) and module.VerifyReport is VerifyReport
    assert engine_verify is not module and callable(engine_verify)
    assert isinstance(gpt2_report, VerifyReport)  # made by calling the package: deadir.verify(model, inputs)
