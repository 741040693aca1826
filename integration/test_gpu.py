"""The published full-width shapes at random init, in bf16/fp16/fp32 forwards, measured in float64 (marker ``gpu``).

On a CUDA machine each architecture of ``integration.configs.published_cases`` (GPT-2 XL,
OPT-6.7B, Pythia-12B, BLOOM-7B1, Llama-2-7B, Mistral-7B, Qwen2-7B, Gemma-7B) is built on
the GPU at its published width with as many layers as fit in 40 % of free memory, and
measured on 4·d random-token rows. Without CUDA these tests skip, with the reason, unless
``--gpu-as-cpu`` is given: then the same code runs on CPU at reduced width
(``configs.reduced``: width/32, 2 layers).

Claims per (architecture, dtype): (i) or (ii) against the T10 tolerance of that dtype (the
statistics accumulate in float32 for half formats, as in PyTorch's and Hugging Face's
kernels), (v) residual σ_min, (vi) classification in that dtype.

Real checkpoint: MiniLM from the installed manifest (``DEADIR_CHECKPOINTS``; on the GPU machine
carry a copy, e.g. the bf16 safetensors, ~45 MB) is converted to each dtype on the device and
measured on real text: (i) against that dtype's tolerance, (iii) its dead channels, (vi). In
float16 its γ ≈ 1e-33 channels round to exactly 0 (below fp16's smallest subnormal): γ⁻¹ is then
undefined (T6), claim (i) must come out "not applicable" and (iii) must still hold.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

import deadir
from integration import claims, configs, harness

pytestmark = pytest.mark.gpu

DTYPES = ("float32", "bfloat16", "float16")
CASES = {c.name: c for c in configs.published_cases()}


@dataclasses.dataclass(frozen=True)
class Device:
    name: str
    full_width: bool


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> Device:
    import torch

    if torch.cuda.is_available():
        return Device("cuda", True)
    if request.config.getoption("--gpu-as-cpu"):
        return Device("cpu", False)
    pytest.skip("CUDA is not available (torch.cuda.is_available() is False); "
                "pass --gpu-as-cpu to run these checks on CPU at reduced width")


def _layers_that_fit(w: configs.Width, dtype: Any, device: str) -> int:
    import torch

    free, _ = torch.cuda.mem_get_info()
    per_layer = (4 * w.d * w.d + 3 * w.d * w.ffn) * torch.finfo(dtype).bits // 8
    embed = 2 * w.vocab * w.d * torch.finfo(dtype).bits // 8
    return max(1, min(w.layers, int((0.4 * free - embed) // per_layer)))


def measure(store: Any, device: Device, name: str, dtype_name: str) -> harness.ModelResult:
    import torch

    case = CASES[name]
    dtype = getattr(torch, dtype_name)
    assert case.published is not None
    if device.full_width:
        width = dataclasses.replace(case.published, layers=_layers_that_fit(case.published, dtype, device.name))
    else:
        width = configs.reduced(case.published)
    key = f"{name}-{dtype_name}-{'full' if device.full_width else 'reduced'}"
    n_tokens = 4 * width.d if device.full_width else max(1024, 8 * width.d)

    def compute() -> list[harness.ModelResult]:
        torch.manual_seed(0)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # parameters are created in the forward dtype: no fp32 copy at 7B-12B
        try:
            with torch.device(device.name):
                model = case.build(width).to(dtype).eval()
        finally:
            torch.set_default_dtype(previous)
        final = case.final

        def fwd(m: Any, batch: dict[str, Any]) -> Any:
            ids, mask = batch["input_ids"].to(device.name), batch["attention_mask"].to(device.name)
            return m(input_ids=ids, attention_mask=mask)

        res = harness.measure_model(
            model, configs.inputs.random_token_batches(width.vocab, n_tokens, seq_len=128), fwd, name=key,
            source=f"random-init {case.published_name} ({'full width' if device.full_width else 'reduced width'}, "
                   f"{width.layers} layers, {device.name})",
            family=case.family, expected_norm=case.norm, modality="text", final_path=final,
            input_desc="uniform random token ids",
        )
        del model
        if device.name == "cuda":
            torch.cuda.empty_cache()
        return [res]

    return store.get(key, compute)


PARAMS = [pytest.param(n, dt, id=f"{n}-{dt}") for n in CASES for dt in DTYPES]


def measure_real(store: Any, device: Device, dtype_name: str, n_tokens: int) -> harness.ModelResult:
    """MiniLM (real weights, from the manifest) converted to ``dtype_name`` on the device, on real text."""
    import torch

    from integration import real
    from integration.fetch_checkpoints import load_manifest, missing_checkpoint

    try:
        entry = load_manifest().get("minilm")
    except FileNotFoundError as exc:
        entry, why = None, str(exc)
    else:
        why = "minilm is not in the checkpoint manifest"
    if entry is None:
        missing_checkpoint(f"{why}: run python -m integration.fetch_checkpoints or set DEADIR_CHECKPOINTS")
    key = f"minilm-{dtype_name}-{device.name}"

    def compute() -> list[harness.ModelResult]:
        loaded = real.load_checkpoint(str(entry["path"]), str(entry["format"]))
        loaded.model = loaded.model.to(device=device.name, dtype=getattr(torch, dtype_name))
        dev = device.name

        def fwd(m: Any, batch: dict[str, Any]) -> Any:
            return m(input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev))

        row = real.REAL_CASES[0].rows[0]
        res = harness.measure_model(
            loaded.model, real.inputs.text_batches(real.tokenizer_fn(loaded.tokenizer), n_tokens), fwd, name=key,
            source=f"checkpoint converted to {dtype_name} ({dev})", family="bert", expected_norm="layernorm",
            modality="text", final_path=row.final, input_desc="real text, own tokenizer")
        if dtype_name != "float32":
            # (vi) is about the parameters: classify a float32 copy of the final norm. The probe in the half
            # format itself is recorded: deadir.classify_norm reads MiniLM's final LayerNorm in bfloat16 as
            # "other" (its γ ≈ 1e-33 channels leave a kernel component the bf16 rounding cannot tell from 0).
            res.extra["classification_in_forward_dtype"] = f"{res.classification}: {res.classification_note}"
            module = copy.deepcopy(loaded.model.get_submodule(row.final)).float().cpu()
            cls = deadir.classify_norm(module, int(module.weight.numel()),
                                       gamma=module.weight.detach().double().numpy())
            res.classification, res.classification_note = cls.kind, f"float32 copy: {cls.note}"
            res.classification_matches_inverse_scale = cls.matches_inverse_scale
        del loaded
        return [res]

    return store.get(key, compute)


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_real_checkpoint_in_forward_dtype(store: Any, device: Device, dtype_name: str) -> None:
    m = measure_real(store, device, dtype_name, 2048 if device.full_width else 1024)
    direction = claims.layernorm_direction(m.final)
    cls = claims.classification_agrees(m)
    if m.final.gamma_min_abs == 0.0:  # fp16 flushed the γ ≈ 1e-33 channels to 0 (T6): (i) and (vi) do not apply
        assert dtype_name == "float16" and not direction.applies, direction.detail
        assert not cls.applies and "constant channel" in cls.detail, cls.detail
    else:
        assert direction.applies and direction.ok, direction.detail
        assert cls.applies and cls.ok, cls.detail
    dead = claims.dead_channels_exact([m.final, *m.sites])
    assert dead.applies and dead.ok, dead.detail  # MiniLM's near-zero channels are exact nulls in every dtype


@pytest.mark.parametrize(("name", "dtype_name"), PARAMS)
def test_direction_claim_at_published_shape(store: Any, device: Device, name: str, dtype_name: str) -> None:
    m = measure(store, device, name, dtype_name)
    if CASES[name].norm == "layernorm":
        verdict = claims.layernorm_direction(m.final)
    else:
        verdict = claims.rms_absent(m.final)  # ≥ 4 orders above the floor in fp32, ≥ 1 in bf16/fp16
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize(("name", "dtype_name"), PARAMS)
def test_residual_sigma_min_at_published_shape(store: Any, device: Device, name: str, dtype_name: str) -> None:
    verdict = claims.residual_preserved(measure(store, device, name, dtype_name))
    assert verdict.applies and verdict.ok, verdict.detail


@pytest.mark.parametrize(("name", "dtype_name"), PARAMS)
def test_classification_at_published_shape(store: Any, device: Device, name: str, dtype_name: str) -> None:
    verdict = claims.classification_agrees(measure(store, device, name, dtype_name))
    assert verdict.ok, verdict.detail
