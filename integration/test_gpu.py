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
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

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
