"""No checkpoint code ever runs: auto_map and shipped Python are refused before transformers sees them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deadir.errors import CheckpointError
from deadir.models import load_model
from deadir.models.loading import UntrustedCheckpointError, refuse_custom_code

REPO = Path(__file__).resolve().parents[2]
TINY_BERT = {"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 16, "vocab_size": 64, "max_position_embeddings": 32}


def _evil_folder(tmp_path: Path, marker: Path, *, config_extra: dict[str, object], py_name: str | None,
                 config_name: str = "config.json") -> Path:
    folder = tmp_path / "evil"
    folder.mkdir()
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    if py_name is not None:
        (folder / py_name).write_text(code + "from transformers import BertModel as EvilModel\n")
    config = dict(TINY_BERT)
    if config_name == "config.json":
        config.update(config_extra)
    (folder / "config.json").write_text(json.dumps(config))
    if config_name != "config.json":
        (folder / config_name).write_text(json.dumps(config_extra))
    return folder


AUTO_MAP = {"auto_map": {"AutoModel": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}}
CASES = {
    "auto_map+code": ({**AUTO_MAP}, "modeling_evil.py", "config.json"),
    "auto_map-only": ({**AUTO_MAP}, None, "config.json"),
    "code-only": ({}, "modeling_evil.py", "config.json"),
    "nested-auto_map": ({"text_config": {**AUTO_MAP}}, None, "config.json"),
    "tokenizer-auto_map": ({"auto_map": {"AutoTokenizer": ["tok_evil.EvilTok", None]}}, "tok_evil.py",
                           "tokenizer_config.json"),
    "custom_pipelines": ({"custom_pipelines": {"evil": {"impl": "pipe_evil.Evil"}}}, None, "config.json"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_custom_code_is_refused_by_the_api(case: str, tmp_path: Path) -> None:
    extra, py_name, config_name = CASES[case]
    marker = tmp_path / "marker"
    folder = _evil_folder(tmp_path, marker, config_extra=extra, py_name=py_name, config_name=config_name)
    with pytest.raises(UntrustedCheckpointError):
        load_model(str(folder))
    assert not marker.exists()


@pytest.mark.parametrize("case", ["auto_map+code", "tokenizer-auto_map"])
def test_cli_refuses_even_when_stdin_says_yes(case: str, tmp_path: Path) -> None:
    """`deadir verify` with 'y' answered to every prompt: exit 2, the checkpoint's code never ran."""
    extra, py_name, config_name = CASES[case]
    marker = tmp_path / "marker"
    folder = _evil_folder(tmp_path, marker, config_extra=extra, py_name=py_name, config_name=config_name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "deadir.cli", "verify", str(folder), "--tokens", "16"],
                          input="y\n" * 100, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "never runs checkpoint code" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_in_process_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deadir.cli import main

    extra, py_name, config_name = CASES[case]
    marker = tmp_path / "marker"
    folder = _evil_folder(tmp_path, marker, config_extra=extra, py_name=py_name, config_name=config_name)
    assert main(["verify", str(folder), "--tokens", "16"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "never runs checkpoint code" in captured.err
    assert not marker.exists()


def test_trust_remote_code_false_also_holds_behind_the_refusal(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with the folder check switched off, transformers is still told not to trust the code."""
    import deadir.models.loading as loading

    marker = tmp_path / "marker"
    folder = _evil_folder(tmp_path, marker, config_extra={**AUTO_MAP}, py_name="modeling_evil.py")
    monkeypatch.setattr(loading, "refuse_custom_code", lambda folder, **kwargs: None)
    try:
        load_model(str(folder))
    except CheckpointError:
        pass  # transformers refused the remote code: fine, the point is that it did not run
    assert not marker.exists()


def test_a_clean_folder_passes_the_check(tmp_path: Path) -> None:
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_BERT))
    refuse_custom_code(folder)  # no error: the refusals above are about the code, not the folder


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 70 + "1" + "}" * 70])
def test_deep_config_json_is_a_typed_error(text: str, tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="nesting depth"):
        load_model(str(folder))


def test_a_gguf_shipped_inside_a_python_package_is_not_refused_for_its_init(tmp_path: Path) -> None:
    """A .gguf is loaded from its own bytes: the package's __init__.py beside it is not checkpoint code."""
    (tmp_path / "__init__.py").write_text("")
    refuse_custom_code(tmp_path, python_files=False)
    with pytest.raises(UntrustedCheckpointError):  # the same folder loaded as a whole is refused
        refuse_custom_code(tmp_path)


def test_a_gguf_folder_with_an_auto_map_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["x.Tok", None]}}))
    with pytest.raises(UntrustedCheckpointError):
        refuse_custom_code(tmp_path, python_files=False)
