"""Checkpoints a user names: ``--checkpoint PATH`` (repeatable) or ``DEADIR_EXTRA_CHECKPOINTS``.

A folder (safetensors + config.json), a ``.gguf`` file, a CTranslate2 Whisper ``model.bin``,
or a Hugging Face id resolved from the local cache only. A Whisper checkpoint gives two rows,
its encoder (on log-mel features) and its decoder (on text), as the built-in whisper-base does.
The expected norm comes from the architecture table (``real.expected_norm_of``), never from
the model itself. The final norm's kind decides which claim applies: (i) for LayerNorm, (ii)
for RMSNorm; (iii) and (vi) always. (iv) and (v) are measured and reported (they are
empirical claims about particular models, not theorems).

``test_measure_extra_on_tiny_saved_checkpoints`` runs the same path on two tiny random-init
checkpoints written to disk (a safetensors BERT folder, a CTranslate2 Whisper file), so the
path is exercised in CI even when nobody names a checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from integration import claims, harness, real, tiny_checkpoints


def measure(store: Any, tokens: int, spec: str) -> list[harness.ModelResult]:
    names = real.extra_row_names(spec)
    store.get(names[0], lambda: real.measure_extra(spec, n_tokens=tokens, twin_tokens=tokens))
    return [store.results[n] for n in names]


def _check_rows(rows: list[harness.ModelResult]) -> None:
    for m in rows:
        direction = claims.layernorm_direction(m.final) if m.final.kind == "layernorm" else claims.rms_absent(m.final)
        assert direction.applies and direction.ok, f"{m.name}: {direction.detail}"
        dead = claims.dead_channels_exact([m.final, *m.sites])
        assert dead.ok, f"{m.name}: {dead.detail}"
        cls = claims.classification_agrees(m)
        assert cls.applies and cls.ok, f"{m.name}: {cls.detail}"


def test_extra_checkpoint_claims(store: Any, tokens: int, extra_spec: str) -> None:
    _check_rows(measure(store, tokens, extra_spec))


def test_measure_extra_on_tiny_saved_checkpoints(tmp_path: Path) -> None:
    bert = tiny_checkpoints.save_tiny_safetensors(tmp_path / "tiny-bert", "bert")
    whisper = tiny_checkpoints.save_tiny_ct2_whisper(tmp_path / "tiny-whisper")
    # Not in the session store: these rows are fixtures, not models of the report.
    rows = {m.name: m for spec in (str(bert), str(whisper))
            for m in real.measure_extra(spec, n_tokens=512, twin_tokens=512)}
    assert list(rows) == ["user:tiny-bert", "user:model.bin-encoder", "user:model.bin-decoder"]
    assert real.extra_row_names(str(whisper)) == ["user:model.bin-encoder", "user:model.bin-decoder"]
    enc, dec = rows["user:model.bin-encoder"], rows["user:model.bin-decoder"]
    assert (enc.final.path, enc.modality, enc.tokens) == ("model.encoder.layer_norm", "speech", 1500)
    assert (dec.final.path, dec.modality) == ("model.decoder.layer_norm", "text") and dec.tokens >= 512
    assert "log-mel" in enc.input_desc and "Whisper's tokenizer" in dec.input_desc
    assert all(m.expected_norm == "layernorm" and m.twin is not None for m in rows.values())
    _check_rows(list(rows.values()))
    # (vi) compares with the architecture table, not with the model: the wrong architecture fails,
    # and an architecture the table lacks is "not applicable", never a pass.
    m = rows["user:tiny-bert"]
    assert not claims.classification_agrees(dataclasses.replace(m, expected_norm=real.expected_norm_of("llama"))).ok
    unknown = claims.classification_agrees(dataclasses.replace(m, expected_norm=real.expected_norm_of("no-such-arch")))
    assert not unknown.applies, unknown.detail


def test_expected_norm_comes_from_the_architecture_table() -> None:
    assert [real.expected_norm_of(t) for t in ("bert", "whisper", "llama", "gemma3_text", "xlm-roberta")] == [
        "layernorm", "layernorm", "rmsnorm", "rmsnorm", "layernorm"]
    assert real.expected_norm_of("electra") == "layernorm"  # from its architecture record
    assert real.expected_norm_of("no-such-arch") == "unknown"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "extra_spec" in metafunc.fixturenames:
        specs = real.extra_specs(metafunc.config.getoption("--checkpoint"))
        if specs:
            metafunc.parametrize("extra_spec", specs)
        else:
            metafunc.parametrize("extra_spec", [pytest.param("", marks=pytest.mark.skip(
                reason="no extra checkpoint named (--checkpoint PATH or DEADIR_EXTRA_CHECKPOINTS)"))])
