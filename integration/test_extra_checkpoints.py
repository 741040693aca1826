"""Checkpoints a user names: ``--checkpoint PATH`` (repeatable) or ``DEADIR_EXTRA_CHECKPOINTS``.

A folder (safetensors + config.json), a ``.gguf`` file, a CTranslate2 Whisper ``model.bin``,
or a Hugging Face id resolved from the local cache only. The final norm decides which claim
applies: (i) for LayerNorm, (ii) for RMSNorm; (iii) and (vi) always. (iv) and (v) are
measured and reported (they are empirical claims about particular models, not theorems).
"""

from __future__ import annotations

from typing import Any

import pytest

from integration import claims, harness, real


def measure(store: Any, tokens: int, spec: str) -> harness.ModelResult:
    return store.get(real.extra_name(spec), lambda: real.measure_extra(spec, n_tokens=tokens, twin_tokens=tokens))


def test_extra_checkpoint_claims(store: Any, tokens: int, extra_spec: str) -> None:
    m = measure(store, tokens, extra_spec)
    direction = claims.layernorm_direction(m.final) if m.final.kind == "layernorm" else claims.rms_absent(m.final)
    assert direction.applies and direction.ok, direction.detail
    dead = claims.dead_channels_exact([m.final, *m.sites])
    assert dead.ok, dead.detail
    cls = claims.classification_agrees(m)
    assert cls.ok, cls.detail


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "extra_spec" in metafunc.fixturenames:
        specs = real.extra_specs(metafunc.config.getoption("--checkpoint"))
        if specs:
            metafunc.parametrize("extra_spec", specs)
        else:
            metafunc.parametrize("extra_spec", [pytest.param("", marks=pytest.mark.skip(
                reason="no extra checkpoint named (--checkpoint PATH or DEADIR_EXTRA_CHECKPOINTS)"))])
