"""verify(): per-site kernel measurement, residual stream, random-init comparison, errors, CLI."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from deadir import InputShapeError, UnknownNormError, make_inputs, verify
from deadir.cli import main
from deadir.models import random_model
from deadir.verify import DROP_RATIO, rounding_floor_rel

LN_FAMILIES = {"gpt2", "opt", "gpt_neox", "bloom", "falcon", "phi", "bert", "roberta", "mpnet", "vit", "clip",
               "whisper", "olmo"}


# the families verify was first written against (every record is walked by tests/test_arch.py)
VERIFY_FAMILIES = ("bert", "bloom", "clip", "falcon", "gemma", "gemma2", "gemma3_text", "gpt2", "gpt_neox", "llama",
                   "mistral", "mpnet", "olmo", "olmo2", "opt", "phi", "qwen2", "qwen3", "roberta", "t5", "vit",
                   "whisper")


@pytest.mark.parametrize("model_type", VERIFY_FAMILIES)
def test_every_family_layernorm_at_floor_rmsnorm_not(model_type: str) -> None:
    """T2 at random init: γ⁻¹ is a kernel vector of every LayerNorm site, of no RMSNorm site (T5)."""
    model = random_model(model_type)
    report = verify(model, make_inputs(model, n_tokens=160), batch_size=16)
    assert report.sites and report.forward_dtype == "float32"
    for s in report.sites:
        assert s.rayleigh_rel is not None and s.floor_rel is not None
        if model_type in LN_FAMILIES:
            assert s.predicted == "kernel" and s.at_floor, (s.site.path, s.rayleigh_rel, s.floor_rel)
        else:
            # negative control: the same measurement on RMSNorm is orders of magnitude above the floor
            # (≥ 100×: OLMo 2's post-feedforward norm at init sees nearly equal rows, λmax ≈ 7e-7 of
            # the output's mean square, which lifts the floor relative to λmax to ~2e-5)
            assert s.predicted == "control" and not s.at_floor
            assert s.rayleigh_rel > 100 * s.floor_rel, (s.site.path, s.rayleigh_rel, s.floor_rel)
    assert report.final  # the final-norm sites were measured


def test_layernorm_site_numbers(gpt2_report) -> None:  # type: ignore[no-untyped-def]
    s = gpt2_report.site("ln_f")
    assert s.n == 512 and s.d == 32 and s.distinct_rows == 512 and not s.rank_limited
    # isotropic-ish inputs and a clear gap: the bottom eigenvector is v (Davis–Kahan: |sinθ| ≤ ‖E‖/gap,
    # ‖E‖ ≈ floor·λmax ≈ 4e-12·λmax, gap ≈ 0.04·λmax, so 1 − cos ≤ 1e-20 ≪ 1e-8)
    assert s.spectral_gap_rel > 1e-3
    assert s.cos_bottom is not None and s.cos_bottom >= 1 - 1e-8
    assert s.near_null == {1e-10: 1, 1e-6: 1, 1e-3: 1}
    assert s.dead == () and s.live_fraction == 1.0
    assert s.mean_ratio is not None and 0 < s.mean_ratio < 10  # ρ measured on ln_f's own inputs
    assert s.rayleigh_rel is not None and s.floor_rel is not None and s.rayleigh_rel < 1e-3 * s.floor_rel
    # the direct O(N·d) projection agrees with √(vᵀCv)
    assert s.projection_std is not None and s.eigval_along_direction is not None
    assert s.projection_std <= 10 * math.sqrt(max(s.eigval_along_direction, 0.0)) + 1e-12
    assert s.projection_std < 1e-6


def test_rmsnorm_control_even_with_one_tiny_gain() -> None:
    """A tiny gain makes γ⁻¹ almost an axis with high |cos|; the Rayleigh quotient still says 'no kernel'."""
    model = random_model("llama")
    with torch.no_grad():
        model.norm.weight[5] = 0.02
    report = verify(model, make_inputs(model, n_tokens=512))
    s = report.site("norm")
    assert s.cos_bottom is not None and s.cos_bottom > 0.5
    assert not s.at_floor and s.rayleigh_rel is not None and s.rayleigh_rel > 1e4 * (s.floor_rel or 0)
    assert s.near_null[1e-10] == 0


def test_repeated_prefixes_fake_null_directions(gpt2: torch.nn.Module) -> None:
    """Negative control: shared prefixes leave too few distinct rows, and extra near-null directions appear."""
    rng = np.random.default_rng(3)
    distinct = torch.from_numpy(rng.integers(0, 128, size=(4, 16)))
    distinct[:, 0] = torch.tensor([5, 6, 7, 8])
    shared = distinct.clone()
    shared[:, :12] = shared[0, :12]  # 12 shared tokens: 12 + 4·4 = 28 distinct rows < d + 1 = 33
    good = verify(gpt2, {"input_ids": distinct}).site("ln_f")
    bad = verify(gpt2, {"input_ids": shared}).site("ln_f")
    assert good.distinct_rows == 64 and not good.rank_limited
    assert good.near_null[1e-10] == 1
    assert bad.distinct_rows == 28 and bad.rank_limited and "rank-limited" in bad.note
    assert bad.near_null[1e-10] >= 32 - 27  # rank ≤ 27 of 32
    assert bad.at_floor  # γ⁻¹ stays in the kernel; the extra null directions come from the inputs


def test_streaming_equals_one_batch(gpt2: torch.nn.Module) -> None:
    inputs = make_inputs(gpt2, n_tokens=256)
    a = verify(gpt2, inputs, batch_size=1).site("h.1.ln_2")
    b = verify(gpt2, inputs, batch_size=64).site("h.1.ln_2")
    assert a.n == b.n == 256 and a.kernel is not None and b.kernel is not None
    np.testing.assert_allclose(a.kernel.eigvals[1:], b.kernel.eigvals[1:], rtol=1e-9)
    assert a.lambda_max == pytest.approx(b.lambda_max, rel=1e-12)


def test_bfloat16_forward_is_reported_and_measured_in_float64(gpt2: torch.nn.Module) -> None:
    report = verify(gpt2, make_inputs(gpt2, n_tokens=256), dtype="bfloat16")
    assert report.forward_dtype == "bfloat16" and report.to_dict()["measurement_dtype"] == "float64"
    assert next(gpt2.parameters()).dtype == torch.float32  # the caller's model is not cast
    s = report.site("ln_f")
    assert s.floor_rel is not None and s.floor_rel > 1e-8  # bf16 floor: (2⁻⁸)² scale, not float32's
    assert s.at_floor


def test_dead_and_zero_scales(gpt2: torch.nn.Module) -> None:
    model = copy.deepcopy(gpt2)
    with torch.no_grad():
        model.ln_f.weight[3] = 1e-30
        model.h[0].ln_1.weight[7] = 0.0
    report = verify(model, make_inputs(model, n_tokens=256))
    dead = report.site("ln_f")
    assert dead.dead == (3,) and dead.live_fraction < 1e-20
    assert "dead channel" in dead.note
    zero = report.site("h.0.ln_1")
    assert zero.dead == (7,) and "zero scale" in zero.note and zero.predicted == "control"
    # T6: γ⁻¹ over the live channels is not a kernel vector (⟨γ_live⁻¹, y − β⟩ = −z₇ varies) ...
    assert zero.kernel is not None and zero.at_floor is False
    assert zero.rayleigh_rel is not None and zero.floor_rel is not None and zero.rayleigh_rel > 1e6 * zero.floor_rel
    # ... while e₇ is an exact null axis: exactly one eigenvalue at the floor, along e₇
    assert zero.near_null[1e-10] == 1
    assert zero.kernel.floor_dim == 1


class _Block(torch.nn.Module):
    def __init__(self, d: int, collapse: bool) -> None:
        super().__init__()
        self.ln = torch.nn.LayerNorm(d)
        self.lin = torch.nn.Linear(d, d)
        self.register_buffer("scale", torch.ones(d))
        if collapse:
            self.scale[0] = 1e-4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 0.1 * self.lin(self.ln(x))) * self.scale


class _Stack(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([_Block(d, collapse=i == 2) for i in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


def test_residual_drop_is_flagged_only_where_it_happens() -> None:
    torch.manual_seed(0)
    report = verify(_Stack(8), {"x": torch.randn(64, 4, 8)})
    blocks = [(b.block, b.dropped) for b in report.blocks]
    assert blocks == [(-1, False), (0, False), (1, False), (2, True), (3, False)]
    b2 = report.blocks[3]
    assert b2.ratio is not None and b2.ratio < DROP_RATIO and not b2.rank_limited
    assert all(b.ratio is None or b.ratio > 0.5 for b in report.blocks if b.block != 2)


def test_hooks_are_removed(gpt2: torch.nn.Module) -> None:
    verify(gpt2, make_inputs(gpt2, n_tokens=64))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in gpt2.modules())


def test_speech_vision_and_single_tensor_inputs() -> None:
    whisper = random_model("whisper")
    inputs = make_inputs(whisper, n_tokens=100)
    assert inputs.tensors["input_features"].shape[1:] == (80, 100)
    report = verify(whisper, inputs)
    assert {s.site.path for s in report.final} == {"encoder.layer_norm", "decoder.layer_norm"}
    assert all(s.at_floor for s in report.final)
    vit = random_model("vit")
    pixels = torch.randn(4, 3, 16, 16)
    r = verify(vit, pixels)  # a bare 4-D float tensor is pixel_values
    assert r.site("layernorm").n == 4 * 17 and "pixel_values" in r.inputs


def test_error_paths(gpt2: torch.nn.Module) -> None:
    with pytest.raises(UnknownNormError, match="no normalisation sites"):
        verify(torch.nn.Sequential(torch.nn.Linear(4, 4)), {"input": torch.randn(3, 4)})
    with pytest.raises(InputShapeError, match=r"input_ids.*integer tensor"):
        verify(gpt2, {"input_ids": torch.randn(2, 5)})
    with pytest.raises(InputShapeError, match=r"ids must lie in \[0, 128\)"):
        verify(gpt2, {"input_ids": torch.full((2, 5), 500)})
    with pytest.raises(InputShapeError, match="same non-zero leading"):
        verify(gpt2, {"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": torch.ones(3, 5)})
    with pytest.raises(InputShapeError, match="batch_size"):
        verify(gpt2, {"input_ids": torch.zeros(2, 5, dtype=torch.long)}, batch_size=0)
    with pytest.raises(InputShapeError, match="neither pixel_values"):
        verify(gpt2, torch.randn(3, 4))
    with pytest.raises(InputShapeError, match="decoder_input_ids"):
        whisper = random_model("whisper")
        verify(whisper, {"input_features": torch.randn(1, 80, 100)})
    with pytest.raises(InputShapeError, match="rejected a batch"):
        verify(random_model("vit"), torch.randn(2, 3, 7, 7))  # wrong image size
    with pytest.raises(InputShapeError, match="input_features"):
        verify(random_model("whisper"), {"input_features": torch.randn(1, 40, 100),
                                         "decoder_input_ids": torch.zeros(1, 4, dtype=torch.long)})


def test_rounding_floor_model() -> None:
    g = np.ones(64)
    f32 = rounding_floor_rel(g, np.zeros(64), 1.0, dtype="float32")
    bf16 = rounding_floor_rel(g, np.zeros(64), 1.0, dtype="bfloat16")
    assert f32 < bf16
    # a large |β/γ| raises the floor (T10: the rounding of γᵢzᵢ + βᵢ divided by γᵢ)
    assert rounding_floor_rel(g, np.full(64, 1e3), 1.0, dtype="bfloat16") > 100 * bf16
    # a larger |mean x|/std x of the inputs (ρ) raises it: the centring's rounding is amplified
    assert rounding_floor_rel(g, np.zeros(64), 1.0, dtype="float32", mean_ratio=100.0) > 100 * f32
    # it is deadir.kernel_error_bound's residual² / λmax
    from deadir import kernel_error_bound

    assert f32 == pytest.approx(kernel_error_bound(g, "float32").residual ** 2)
    with pytest.raises(InputShapeError):
        rounding_floor_rel(np.zeros(4), np.zeros(4), 1.0, dtype="float32")


# ---------------------------------------------------------------- CLI


def test_cli_verify_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_json = tmp_path / "r.json"
    code = main(["verify", "random:llama", "--tokens", "128", "--json", "--no-progress", "--output", str(out_json)])
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model_type"] == "llama" and all(s["at_floor"] is False for s in d["sites"])
    assert json.loads(out_json.read_text())["model_type"] == "llama"


def test_cli_verify_table_random_init_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "spectrum.png"
    code = main(["verify", "random:bert", "--tokens", "128", "--random-init", "--plot", str(png),
                 "--dtype", "float64", "--sites", "final"])
    captured = capsys.readouterr()
    assert code == 0 and png.is_file()
    assert "encoder.layer.1.output.LayerNorm" in captured.out and "model vs random init" in captured.out
    assert "forward float64" in captured.out
    assert "verify" in captured.err  # the tqdm progress bar


def test_cli_verify_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["verify", "random:nope", "--no-progress"]) == 2
    assert "no tiny config" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["verify", str(tmp_path), "--no-progress"]) == 2
    assert "no weights" in capsys.readouterr().err
    save_file({"w": torch.ones(2)}, str(tmp_path / "model.safetensors"))
    assert main(["verify", str(tmp_path), "--no-progress"]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_device_map_auto_loads_through_accelerate_and_measures_the_same(tmp_path: Path) -> None:
    """--device auto: accelerate places the layers (here all on the host); the numbers do not move."""
    from deadir.models import load_model

    random_model("gpt2").save_pretrained(tmp_path / "ckpt")
    plain = load_model(str(tmp_path / "ckpt"))
    auto = load_model(str(tmp_path / "ckpt"), device="auto")
    inputs = make_inputs(plain.model, n_tokens=128)
    a, b = verify(plain.model, inputs, progress=False), verify(auto.model, inputs, progress=False)
    # the same float32 operations on the same device: the float64 measurements agree exactly
    assert [s.rayleigh_rel for s in a.sites] == [s.rayleigh_rel for s in b.sites]
    assert set(load_model("random:gpt2", device="auto").model.hf_device_map.values()) == {"cpu"}


def test_weights_offloaded_to_disk_are_a_clear_error(tmp_path: Path) -> None:
    """accelerate's disk offload leaves meta tensors in the module: γ cannot be read, and verify says so."""
    from accelerate import dispatch_model

    device_map = {"wte": "cpu", "wpe": "cpu", "drop": "cpu", "h.0": "cpu", "h.1": "disk", "ln_f": "cpu"}
    model = dispatch_model(random_model("gpt2"), device_map=device_map, offload_dir=str(tmp_path / "offload"))
    with pytest.raises(InputShapeError, match="meta tensor"):
        verify(model, make_inputs(model, n_tokens=32), progress=False)
