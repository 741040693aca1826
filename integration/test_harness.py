"""Negative controls and cross-checks of the integration machinery itself (tiny models, seconds).

Every claim test of the suite must be able to fail: here each claim function is shown to
reject the wrong norm, the dead-channel check to reject a live channel, the drop detector to
flag a collapse, the inputs to avoid repeated prefixes (which fake near-null directions), the
harness to agree with ``deadir.verify``, the gpu suite to skip cleanly without CUDA, and the
report to be written and read back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from integration import claims, configs, harness, inputs, real, report, summary

REPO = Path(__file__).resolve().parent.parent
CASES = {c.name: c for c in configs.matrix()}


def _measure(name: str, model: Any = None, n: int = 1024) -> harness.ModelResult:
    import torch

    case = CASES[name]
    if model is None:
        torch.manual_seed(0)
        model = case.build(configs.TINY).eval()
    return harness.measure_model(model, case.batches(model, n, configs.TINY), configs.forward, name=name,
                                 source="random-init", family=case.family, expected_norm=case.norm,
                                 modality=case.modality, final_path=case.final)


@pytest.fixture(scope="module")
def gpt2() -> harness.ModelResult:
    return _measure("gpt2")


@pytest.fixture(scope="module")
def llama() -> harness.ModelResult:
    return _measure("llama")


def test_claim_i_rejects_an_rmsnorm_site(llama: harness.ModelResult) -> None:
    # The same numbers read as if the site were a LayerNorm: R(v) ≈ 0.2 is far above the T10 tolerance.
    fake = dataclasses.replace(llama.final, kind="layernorm")
    verdict = claims.layernorm_direction(fake)
    assert verdict.applies and not verdict.ok, verdict.detail


def test_claim_ii_rejects_a_layernorm_site(gpt2: harness.ModelResult) -> None:
    fake = dataclasses.replace(gpt2.final, kind="rmsnorm")
    verdict = claims.rms_absent(fake)
    assert verdict.applies and not verdict.ok, verdict.detail


def test_claim_vi_rejects_the_wrong_architecture(gpt2: harness.ModelResult, llama: harness.ModelResult) -> None:
    assert not claims.classification_agrees(dataclasses.replace(gpt2, expected_norm="rmsnorm")).ok
    assert not claims.classification_agrees(dataclasses.replace(llama, expected_norm="layernorm")).ok


def test_claim_i_rejects_a_misaligned_cosine(gpt2: harness.ModelResult) -> None:
    fake = dataclasses.replace(gpt2.final, angle_cos=1.0 - 1e-6)
    assert not claims.layernorm_direction(fake).ok


def test_dead_channel_is_an_exact_null_and_a_live_one_is_not() -> None:
    import torch

    torch.manual_seed(0)
    model = CASES["bert"].build(configs.TINY).eval()
    ln = model.get_submodule(CASES["bert"].final)
    with torch.no_grad():
        ln.weight[5] = 1e-33  # as MiniLM's: the output is β₅ exactly
        ln.weight[9] = 1e-3  # small but alive: must not be reported dead
    res = _measure("bert", model)
    assert res.final.dead == [5]
    verdict = claims.dead_channels_exact([res.final])
    assert verdict.applies and verdict.ok, verdict.detail
    # Control: call channel 9 dead and the exactness check must fail (its variance is not at the floor).
    var9 = dataclasses.replace(res.final, dead=[9], dead_var_rel_max=float(res.final.eigvals_rel[-1] * 0 + 1e-6))
    assert not claims.dead_channels_exact([var9]).ok
    # Claim (i) still holds with the dead channel: v lies in the floor eigenspace.
    assert claims.layernorm_direction(res.final).ok


def test_residual_drop_flagged_only_above_the_floor() -> None:
    smax = [10.0] * 4
    assert harness.residual_drops([1.0, 0.9, 0.05, 0.04], smax, d=64) == [2]
    assert harness.residual_drops([1.0, 1.2, 1.1, 1.3], smax, d=64) == []
    # Floor-level values (post-LN streams) are never a drop: both sit at √(4d·u₆₄)·σ_max.
    assert harness.residual_drops([1e-6, 1e-8, 1e-7], [10.0] * 3, d=64) == []
    res = dataclasses.replace(_fake_result(), residual_sigma_min=[1.0, 0.05], residual_sigma_max=[10.0, 10.0],
                              residual_drops=[1])
    assert not claims.residual_preserved(res).ok
    assert claims.residual_preserved(res, expected_drops=(1,)).ok


def _fake_result() -> harness.ModelResult:
    site = harness.SiteResult(
        path="x", kind="layernorm", d=4, n=10, dtype="float32", eps=1e-5, lambda_max=1.0, rayleigh_rel=1e-16,
        tolerance=1e-10, bound_valid=True, mean_ratio=0.0, beta_over_gamma=0.0, cos_bottom=1.0, gap_rel=0.5,
        floor_dim=1, angle_mode="cos", angle_k=1, angle_cos=1.0, angle_bound=1e-8,
        near_null={"1e-08": 1, "1e-06": 1, "1e-04": 1}, dead=[], dead_var_rel_max=None, live_fraction=1.0,
        gamma_min_abs=1.0, gamma_median_abs=1.0, eigvals_rel=np.array([1e-16, 0.5, 0.7, 1.0]))
    return harness.ModelResult(
        name="fake", source="random-init", family="x", expected_norm="layernorm", modality="text",
        dtype="float32", tokens=10, final=site, sites=[], residual_sigma_min=[1.0], residual_sigma_max=[1.0],
        residual_drops=[], classification="mean-centring", classification_note="",
        classification_matches_inverse_scale=True, load_s=0.0, forward_s=0.0, input_desc="")


def test_repeated_prefixes_fake_near_null_directions() -> None:
    # Why real prompts must be distinct: a causal model maps equal prefixes to equal states, so
    # 16 copies of one 64-token sequence give at most 64 distinct rows for d = 64: rank-deficient.
    import torch

    torch.manual_seed(0)
    model = CASES["llama"].build(configs.TINY).eval()
    ids = torch.randint(0, configs.VOCAB, (1, 64), generator=torch.Generator().manual_seed(1)).repeat(16, 1)
    repeated = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "keep": None}]
    res_rep = harness.measure_model(model, repeated, configs.forward, name="rep", source="x", family="llama",
                                    expected_norm="rmsnorm", modality="text", final_path="norm")
    res_ok = harness.measure_model(model, configs.inputs.random_token_batches(configs.VOCAB, 1024), configs.forward,
                                   name="ok", source="x", family="llama", expected_norm="rmsnorm",
                                   modality="text", final_path="norm")
    assert res_rep.final.near_null["1e-08"] >= 1
    assert res_ok.final.near_null["1e-08"] == 0


def test_text_batches_are_distinct_prompts() -> None:
    seen: set[tuple[str, ...]] = set()

    def tokenize(texts: list[str], max_len: int) -> dict[str, Any]:
        import torch

        words = [t.split()[:max_len] for t in texts]
        width = max(len(w) for w in words)
        ids = torch.zeros((len(texts), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, w in enumerate(words):
            seen_key = tuple(w[:4])
            assert seen_key not in seen, f"two prompts share the prefix {seen_key}"
            seen.add(seen_key)
            ids[i, : len(w)] = torch.tensor([hash(x) % 1000 for x in w])
            mask[i, : len(w)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    n = sum(int(b["keep"].sum()) for b in inputs.text_batches(tokenize, 4000, max_len=64))
    assert n >= 4000


def test_harness_agrees_with_deadir_verify(gpt2: harness.ModelResult, llama: harness.ModelResult) -> None:
    import torch

    from deadir.models import find_norms
    from deadir.verify import verify

    for res in (gpt2, llama):
        case = CASES[res.name]
        torch.manual_seed(0)
        model = case.build(configs.TINY).eval()
        ids = torch.cat([b["input_ids"] for b in configs.inputs.random_token_batches(configs.VOCAB, 1024)])
        site = next(s for s in find_norms(model) if s.path == case.final)
        rep = verify(model, {"input_ids": ids}, sites=[site], residual=False)
        theirs = rep.sites[0].rayleigh_rel
        assert theirs is not None
        ours = res.final.rayleigh_rel
        if case.norm == "layernorm":
            assert theirs <= res.final.tolerance and ours <= res.final.tolerance, (ours, theirs)
        else:  # same rows, same float64 covariance up to summation order
            assert abs(theirs - ours) <= 1e-9 * ours, (ours, theirs)


def test_extra_checkpoint_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert real.resolve_extra(str(folder)) == (str(folder), "safetensors")
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    assert real.resolve_extra(str(gguf)) == (str(gguf), "gguf")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(real.ExtraCheckpointError, match=r"no config\.json"):
        real.resolve_extra(str(empty))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(real.ExtraCheckpointError, match="local_files_only=True"):
        real.resolve_extra("nobody/no-such-model-here")
    monkeypatch.setenv("DEADIR_EXTRA_CHECKPOINTS", os.pathsep.join([str(folder), str(gguf)]))
    assert real.extra_specs([str(gguf), "b"]) == [str(folder), str(gguf), "b"]


def test_gpu_suite_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "integration/test_gpu.py", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
         "--report-dir", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "CUDA is not available" in out and "--gpu-as-cpu" in out, out[-3000:]
    assert " passed" not in out and "failed" not in out, out[-3000:]


def test_report_roundtrip(tmp_path: Path, gpt2: harness.ModelResult, llama: harness.ModelResult) -> None:
    results = [gpt2, llama]
    verdicts = {m.name: claims.all_verdicts(m) for m in results}
    md = report.write_report(results, verdicts, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert [r["model"] for r in data["rows"]] == ["gpt2", "llama"]
    assert all(r["pass"] == "pass" for r in data["rows"])
    assert (tmp_path / "spectra" / "gpt2.png").read_bytes()[:4] == b"\x89PNG"
    assert "| gpt2 |" in md.read_text()
    lines, ok = summary.integration_part(tmp_path.parent, tmp_path.name)
    assert ok and "2/2 models pass" in lines[0]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


# --- claim (i): the alignment half and the tolerance are never vacuous ----------------------------------


def _site_from_rows(gamma: np.ndarray, beta: np.ndarray, x: np.ndarray, dtype: str = "float32") -> harness.SiteResult:
    """site_result on LayerNorm outputs of the rows x, computed in float64 (a reference forward)."""
    import torch

    from deadir.norms import NormSpec

    spec = NormSpec("layernorm", weight=gamma, bias=beta, eps=1e-5)
    cap = harness._Capture(gamma.size)
    cap.add(torch.from_numpy(spec.apply(x)), None, inputs=torch.from_numpy(x))
    return harness.site_result("ln", spec, cap, dtype)


def test_claim_i_alignment_not_testable_is_not_applicable_never_a_pass() -> None:
    # 16 distinct rows for d = 64: the covariance has rank 15, so v sits in a 49-dim floor eigenspace and no
    # eigenspace of dimension ≤ d/2 resolves it. The old "dk" mode set the bound to min(1, ∞) = 1 and passed.
    rng = np.random.default_rng(0)
    d = 64
    site = _site_from_rows(rng.uniform(0.5, 2.0, d), rng.standard_normal(d), rng.standard_normal((16, d)))
    assert site.angle_mode == "none" and "no bottom eigenspace" in site.angle_note, site
    verdict = claims.layernorm_direction(site)
    assert not verdict.applies and "not applicable" in verdict.detail, verdict.detail
    # With the Rayleigh half failing as well the claim fails outright.
    assert not claims.layernorm_direction(dataclasses.replace(site, rayleigh_rel=1.0)).ok


def test_claim_i_rejects_a_vacuous_alignment_bound(gpt2: harness.ModelResult) -> None:
    # A bound ≥ ALIGN_MAX would pass any vector (a random one has 1 − ‖P_k v‖ ≈ 0.3): never a pass.
    fake = dataclasses.replace(gpt2.final, angle_mode="dk", angle_k=1, angle_cos=0.2, angle_bound=1.0)
    verdict = claims.layernorm_direction(fake)
    assert not (verdict.applies and verdict.ok), verdict.detail


def test_claim_i_dk_mode_bound_is_a_test(gpt2: harness.ModelResult) -> None:
    # A half-precision floor (R + floor ≈ 1e-6) keeps every angle above 1e-8; the Davis–Kahan bound must then be
    # a real test (≤ ALIGN_MAX), and a misaligned vector must fail it.
    rel = np.concatenate([[1e-9], np.linspace(1e-3, 1.0, 63)])
    mode, k, bound, _ = harness.alignment_mode(rel, 1e-6, rel[1] - rel[0])
    assert (mode, k) == ("dk", 1) and bound <= harness.ALIGN_MAX
    # No gap at the bottom (10 eigenvalues at the floor): the subspace of the 10 is tested instead.
    rel_flat = np.concatenate([np.full(10, 1e-9), np.linspace(1e-3, 1.0, 54)])
    mode, k, bound, _ = harness.alignment_mode(rel_flat, 1e-5, 0.0)
    assert (mode, k) == ("dk", 10) and bound <= harness.ALIGN_MAX
    fake = dataclasses.replace(gpt2.final, angle_mode="dk", angle_k=10, angle_bound=bound, angle_cos=0.9)
    assert not claims.layernorm_direction(fake).ok


def test_claim_i_void_bound_is_not_a_pass() -> None:
    rng = np.random.default_rng(1)
    d = 32
    gamma = rng.uniform(0.5, 2.0, d)
    gamma[3] = 0.0  # T6: γ⁻¹ undefined, kernel_error_bound raises, tolerance is ∞
    site = _site_from_rows(gamma, rng.standard_normal(d), rng.standard_normal((512, d)))
    assert not site.bound_valid and site.tolerance == float("inf") and "DegenerateScaleError" in site.bound_note
    verdict = claims.layernorm_direction(site)
    assert not verdict.applies and "T6" in verdict.detail, verdict.detail
    # A void bound without zero scales: the claim fails (no tolerance to judge R against).
    void = dataclasses.replace(site, gamma_min_abs=0.5, bound_note="(d+1)·u_c ≥ 1")
    assert not claims.layernorm_direction(void).ok
    # (iii) still holds: the zero channel is an exact null direction of its own.
    assert claims.dead_channels_exact([site]).ok


# --- claim (iv): depth along v -----------------------------------------------------------------------


def test_claim_iv_depth_ratio_is_judged(gpt2: harness.ModelResult, llama: harness.ModelResult) -> None:
    trained = dataclasses.replace(gpt2.final, rayleigh_rel=1e-19)
    twin = dataclasses.replace(gpt2, final=dataclasses.replace(gpt2.final, rayleigh_rel=1e-15))
    deeper = dataclasses.replace(gpt2, final=trained, twin=twin)
    assert claims.depth_along_direction(deeper).ok
    # Negative controls: no deeper (ratio 1) fails the paper's claim; a recorded deviation that no longer
    # holds (the model is deeper after all) fails too.
    same = dataclasses.replace(gpt2, twin=gpt2)
    assert not claims.depth_along_direction(same).ok
    assert claims.depth_along_direction(same, expect_deeper=False).ok
    assert not claims.depth_along_direction(deeper, expect_deeper=False).ok
    assert not claims.depth_along_direction(dataclasses.replace(llama, twin=llama)).applies
    assert not claims.depth_along_direction(gpt2).applies  # no twin


# --- claim (v): post-LN boundaries are measured off the known kernel -----------------------------------


def test_claim_v_post_ln_sigma_min_is_measured_off_the_kernel_and_can_fail() -> None:
    import torch

    res = _measure("bert")
    assert all(p is not None for p in res.residual_post_ln), res.residual_post_ln  # every boundary is an LN output
    for raw, proj, smax in zip(res.residual_sigma_min_raw, res.residual_sigma_min, res.residual_sigma_max,
                               strict=True):
        assert raw <= 1e-6 * smax and proj >= 1e-2 * smax, (raw, proj, smax)  # T2 floor vs the live directions
    assert claims.residual_preserved(res).ok
    # Negative control: two small live gains (γ₅ = γ₉ = 1e-3) in the last block's output LayerNorm squeeze the
    # stream along (e₅ − e₉)/√2, which is orthogonal to γ⁻¹. The plain σ_min is at the floor either way and
    # cannot see it; σ_min off the kernel drops 1000× and the drop is flagged.
    torch.manual_seed(0)
    model = CASES["bert"].build(configs.TINY).eval()
    with torch.no_grad():
        ln = model.get_submodule(CASES["bert"].final)
        ln.weight[5] = ln.weight[9] = 1e-3
    squeezed = _measure("bert", model)
    assert squeezed.residual_drops == [len(squeezed.residual_sigma_min) - 1], squeezed.residual_sigma_min
    assert not claims.residual_preserved(squeezed).ok


def test_claim_v_pre_ln_boundaries_are_plain_residual_sums(gpt2: harness.ModelResult) -> None:
    assert gpt2.residual_post_ln and all(p is None for p in gpt2.residual_post_ln)
    assert gpt2.residual_sigma_min == gpt2.residual_sigma_min_raw


# --- the Fisher section of the report -----------------------------------------------------------------


def test_fisher_section_written_and_a_failing_row_shows(tmp_path: Path, gpt2: harness.ModelResult) -> None:
    dead = report.fisher_row("minilm", "read-bias", "layer 0", fisher=1e-30, random=1e-3, floor=1e-12,
                             unit_roundoff=2.0**-24, expect="dead", ratio=1e-27)
    live = report.fisher_row("smollm2", "read-bias", "q_proj", fisher=1e-4, random=1e-3, floor=1e-12,
                             unit_roundoff=2.0**-24, expect="live")
    assert dead["verdict"] == live["verdict"] == "pass"
    # Negative controls: a "dead" family at the size of random directions, a "live" control at the floor.
    assert report.fisher_row("m", "f", "w", fisher=1e-3, random=1e-3, floor=1e-12, unit_roundoff=2.0**-24,
                             expect="dead")["verdict"] == "FAIL"
    assert report.fisher_row("m", "f", "w", fisher=1e-13, random=1e-3, floor=1e-12, unit_roundoff=2.0**-24,
                             expect="live")["verdict"] == "FAIL"
    md = report.write_report([gpt2], {"gpt2": claims.all_verdicts(gpt2)}, tmp_path,
                             sections={report.FISHER_SECTION: [dead, live]}).read_text()
    assert f"## {report.FISHER_SECTION}" in md and "| minilm | read-bias |" in md
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["sections"][report.FISHER_SECTION][1]["model"] == "smollm2"


# --- the gpu suite's --gpu-as-cpu path ----------------------------------------------------------------


def test_gpu_suite_runs_on_cpu_with_gpu_as_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "integration/test_gpu.py", "-m", "gpu", "-q", "-p", "no:cacheprovider",
         "--gpu-as-cpu", "-k", "test_direction_claim_at_published_shape and (gpt2-float32 or llama-float32)",
         "--report-dir", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "2 passed" in out, out[-3000:]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["title"] == "deadir gpu suite on CPU (--gpu-as-cpu, reduced widths)"
    assert sorted(r["model"] for r in data["rows"]) == ["gpt2-float32-reduced", "llama-float32-reduced"]
    assert all("reduced width" in r["source"] and r["pass"] == "pass" for r in data["rows"])


def test_residual_drop_after_a_layernorm_boundary_compares_plain_values() -> None:
    # BLOOM: boundary 0 is the embedding LayerNorm's output (σ_min off its kernel 21.7, plain σ_min 3e-6 at the
    # floor), boundary 1 a residual sum (plain 0.23): a rise from the plain floor, not a drop.
    smin, raw, smax, ln = [21.7, 0.233, 0.354], [3e-6, 0.233, 0.354], [42.6] * 3, ["emb_ln", None, None]
    assert harness.residual_drops(smin, smax, d=64, raw=raw, post_ln=ln) == []
    # Control: without that rule the same numbers are (wrongly) a drop; a real fall after it is still flagged.
    assert harness.residual_drops(smin, smax, d=64) == [1]
    assert harness.residual_drops([21.7, 0.233, 0.001], smax, d=64, raw=raw, post_ln=ln) == [2]
