"""The ``deadir`` command line: one subcommand per job, each with --json."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deadir.classify import classify_norm
from deadir.errors import DeadirError
from deadir.models.inputs import MAX_INPUT_BYTES
from deadir.precision import DEAD_CHANNEL_REL_TOL
from deadir.report import dumps, render_table
from deadir.scan.baseline import DEFAULT_MAX_ANGLE
from deadir.testing.examples import BUILTIN_NORMS, build_builtin_norm, draw_gamma

__all__ = ["build_parser", "main"]

def _cmd_classify(args: argparse.Namespace) -> int:
    import math

    if args.d < 2:
        raise DeadirError(f"--d: must be ≥ 2, got {args.d}")
    if not (math.isfinite(args.spread) and args.spread >= 1.0):
        raise DeadirError(f"--spread: must be a finite number ≥ 1, got {args.spread}")
    if not (math.isfinite(args.beta_scale) and args.beta_scale >= 0.0):
        raise DeadirError(f"--beta-scale: must be a finite number ≥ 0, got {args.beta_scale}")
    if args.seed < 0:
        raise DeadirError(f"--seed: must be ≥ 0 (numpy seeds are non-negative), got {args.seed}")
    if args.d > args.max_d:  # before γ and the module are built: a huge d must not allocate
        raise DeadirError(f"--d: {args.d} exceeds --max-d {args.max_d} (the probe needs about "
                          f"{32 * args.d * args.d / 2**30:.1f} GiB); raise --max-d to allow it")
    if args.kind == "groupnorm" and (args.groups < 1 or args.d % args.groups):
        raise DeadirError(f"--groups: {args.groups} groups do not divide d={args.d} channels evenly")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise DeadirError(f"--timeout: must be a positive number of seconds, got {args.timeout}")
    gamma = draw_gamma(args.d, spread=args.spread, seed=args.seed)
    beta = np.random.default_rng(args.seed + 1).standard_normal(args.d) * args.beta_scale
    norm = build_builtin_norm(args.kind, args.d, groups=args.groups, gamma=gamma, beta=beta, dtype=args.dtype)
    result = classify_norm(norm, args.d, seed=args.seed, timeout=args.timeout, max_d=args.max_d, method=args.method)
    if args.json:
        print(dumps({"norm": args.kind, **result.to_dict()}))
        return 0
    rows = [
        ("norm", args.kind), ("d", result.d), ("dtype", result.dtype), ("kind", result.kind),
        ("kernel dim", result.kernel_dim), ("kernel = span(1/gamma)", result.matches_inverse_scale),
        ("kernel = span(1)", result.kernel_is_ones), ("constant channels", len(result.constant_channels)),
        ("rounding floor tau", result.floor), ("smallest eigenvalue", result.bottom_eigvals[0]),
        ("next above floor", result.gap), ("certified gap lower bound", result.gap_lower),
        ("scale invariant", result.scale_invariant), ("method", result.method), ("probe rows", result.rows),
        ("note", result.note),
    ]
    print(render_table(("field", "value"), rows))
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from deadir.report import write_json_atomic
    from deadir.scan import compare_to_baseline, load_baseline, plot_scan, scan

    # every option and destination is checked before the work, so a bad one prints nothing but the error
    if not (math.isfinite(args.max_angle) and 0.0 < args.max_angle <= math.pi / 2):
        raise DeadirError(f"--max-angle: must lie in (0, π/2] radians, got {args.max_angle!r}")
    if not (math.isfinite(args.dead_rel_tol) and 0.0 < args.dead_rel_tol < 1.0):
        raise DeadirError(f"--dead-rel-tol: must lie in (0, 1), got {args.dead_rel_tol!r}")
    _check_destination("--output", args.output)
    _check_destination("--plot", args.plot)
    baseline = load_baseline(args.baseline) if args.baseline is not None else None  # fail before the work
    report = scan(args.path, arch=args.arch, dead_rel_tol=args.dead_rel_tol)
    print(report.to_json() if args.json else report.render())
    if args.output is not None:
        write_json_atomic(args.output, report.to_dict())
    if args.plot is not None:
        plot_scan(report, args.plot)
    if baseline is None:
        return 0
    changes = compare_to_baseline(report, baseline, max_angle=args.max_angle)
    stream = sys.stderr if args.json else sys.stdout
    if changes:
        print(f"deadir scan: {len(changes)} normalisation change(s) against {args.baseline} "
              f"(max angle {args.max_angle:g} rad):", file=stream)
        for change in changes:
            print(f"  {change}", file=stream)
        return 1
    print(f"deadir scan: no normalisation change against {args.baseline} (max angle {args.max_angle:g} rad)",
          file=stream)
    return 0


def _cmd_prove(args: argparse.Namespace) -> int:
    # proofs/ ships in the same wheel; it is imported lazily because SymPy is slow to import.
    from proofs.runner import main as run_proofs

    argv = ["--out", args.out]
    if args.json:
        argv.append("--json")
    if args.only:
        argv += ["--only", args.only]
    return run_proofs(argv)


def _cmd_verify(args: argparse.Namespace) -> int:
    from deadir.models import final_norm, find_norms, load_model
    from deadir.models.inputs import make_inputs
    from deadir.report import write_text_atomic
    from deadir.verify import plot_spectrum, verify, verify_against_init

    if args.tokens < 2:
        raise DeadirError(f"--tokens: must be ≥ 2, got {args.tokens}")
    for option, value in (("--seq-len", args.seq_len), ("--batch-size", args.batch_size),
                          ("--fisher-samples", args.fisher_samples), ("--fisher-random", args.fisher_random)):
        if value is not None and value < 1:
            raise DeadirError(f"{option}: must be ≥ 1, got {value}")
    if not (math.isfinite(args.max_input_gib) and args.max_input_gib > 0):
        raise DeadirError(f"--max-input-gib: must be a positive number of GiB, got {args.max_input_gib!r}")
    _check_destination("--output", args.output)
    _check_destination("--plot", args.plot)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DeadirError("--device cuda: CUDA is not available on this machine")
    from deadir.io.onnx import is_onnx_path

    if is_onnx_path(args.path):  # onnxruntime, norm outputs exposed as graph outputs; measured in float64
        return _verify_onnx(args)
    loaded = load_model(args.path, dtype=args.dtype, device=args.device, seed=args.seed)
    model = loaded.model
    inputs = make_inputs(model, n_tokens=args.tokens, seq_len=args.seq_len, seed=args.seed, tokenizer=loaded.tokenizer,
                         max_input_bytes=int(args.max_input_gib * 2**30))
    sites = final_norm(model) if args.sites == "final" else find_norms(model)
    opts = {"batch_size": args.batch_size, "progress": not args.no_progress, "sites": sites,
            "residual": args.sites != "final"}
    if args.random_init:
        # twin seed ≠ the seed of a random: model, so the two are different draws
        comparison = verify_against_init(model, inputs, seed=args.seed + 1, **opts)
        report, init = comparison.trained, comparison.init
    else:
        report, init = verify(model, inputs, **opts), None
    if args.plot:
        plot_spectrum(report, args.plot, init=init)
    fisher = _fisher_section(model, inputs.tensors, args) if args.fisher else None
    extra = {"fisher": fisher.to_dict()} if fisher is not None else {}
    if args.json:
        payload = comparison.to_dict() if init is not None else report.to_dict()
        print(dumps({"source": loaded.source, **payload, **extra}))
    else:
        print(f"deadir verify {loaded.source}")
        print(report.render())
        if init is not None:
            print()
            print(comparison.table())
        if args.plot:
            print(f"\nspectrum plot: {args.plot}")
    if fisher is not None and not args.json:
        print()
        print(fisher.render())
    if args.output:
        payload = comparison.to_dict() if init is not None else report.to_dict()
        write_text_atomic(args.output, dumps({**payload, **extra}) + "\n")
    return 0


def _verify_onnx(args: argparse.Namespace) -> int:
    """`deadir verify model.onnx`: every recognised norm site measured on the model's own kind of input."""
    from deadir.onnx_runtime import verify_onnx
    from deadir.report import write_text_atomic

    if args.random_init or args.fisher or args.plot or args.device != "cpu" or args.dtype:
        raise DeadirError("verify of an ONNX model: --random-init, --fisher, --plot, --device and --dtype do not apply "
                          "(the graph runs as stored, on onnxruntime's CPU provider)")
    result = verify_onnx(args.path, tokens=args.tokens, seed=args.seed,
                         **({"seq_len": args.seq_len} if args.seq_len is not None else {}))
    print(dumps(result.to_dict()) if args.json else f"deadir verify {args.path} (onnxruntime)\n{result.render()}")
    if args.output:
        write_text_atomic(args.output, dumps(result.to_dict()) + "\n")
    return 0


def _fisher_section(model: Any, tensors: dict[str, Any], args: argparse.Namespace) -> Any:
    """The --fisher table: directional Fisher along every candidate dead direction (deadir.fisher)."""
    import dataclasses

    from deadir.fisher import fisher_report, with_lm_head

    headed, note = with_lm_head(model, seed=args.seed)
    n = max(1, args.fisher_samples)
    small = {k: v[:n] if hasattr(v, "shape") and v.ndim >= 1 else v for k, v in tensors.items()}
    # --sites final: the final norm's reader is the LM head, so only the head's families are measured
    layers = ("head",) if args.sites == "final" else None
    report = fisher_report(headed, small, n_random=args.fisher_random, seed=args.seed, layers=layers)
    return dataclasses.replace(report, notes=(*report.notes, note))


def _csv(text: str | None, convert: Callable[[str], Any] = str) -> tuple[Any, ...] | None:
    if text is None:
        return None
    try:
        return tuple(convert(p.strip()) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise DeadirError(f"expected a comma-separated list, got {text!r} ({exc})") from exc


def _cmd_check_norm(args: argparse.Namespace) -> int:
    from deadir.testing.adapters import DriveOptions
    from deadir.testing.harness import DEFAULT_TIMEOUT
    from deadir.testing.pack import run_pack

    options = DriveOptions(
        framework=args.framework, gamma_attr=args.gamma_attr, beta_attr=args.beta_attr, eps_attr=args.eps_attr,
        weight_offset=args.weight_offset, compute_dtype=args.compute_dtype, axis=args.axis, layout=args.layout,
        normalized_shape=_csv(args.normalized_shape, int), groups=args.groups,
        timeout=None if args.timeout == 0 else (DEFAULT_TIMEOUT if args.timeout is None else args.timeout),
        determinism=not args.no_determinism,
        compile=args.compile, node=args.node,
    )
    report = run_pack(
        args.factory, expect=args.expect, dtype=args.dtype, max_examples=args.max_examples, max_d=args.max_d,
        seed=args.seed, properties=_csv(args.properties), reference=args.reference, eps=args.eps, d=args.d,
        conditioned=args.conditioned, options=options,
    )
    print(dumps(report.to_dict()) if args.json else report.render())
    return report.exit_code


def _check_destination(option: str, path: str | None) -> None:
    """Refuse an output path that cannot be written (a folder, under a file, in a read-only folder) before any work.

    Missing folders are fine: the writers create them.
    """
    if path is None:
        return
    from deadir.report import check_destination

    target = check_destination(path)
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DeadirError(f"{option} {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DeadirError(f"{option} {path}: folder {ancestor} is not writable")


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deadir`` command."""
    parser = argparse.ArgumentParser(prog="deadir", description="Algebraic dead directions of normalisation layers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="probe a built-in norm and classify its kernel")
    p.add_argument("kind", choices=BUILTIN_NORMS)
    p.add_argument("--d", type=int, default=64, help="normalised size (default 64)")
    p.add_argument("--groups", type=int, default=4, help="groups for groupnorm (default 4)")
    p.add_argument("--dtype", default="float32", choices=("float16", "bfloat16", "float32", "float64"))
    p.add_argument("--spread", type=float, default=1e3, help="|gamma| log-uniform in [1/spread, spread]; 1 = ones")
    p.add_argument("--beta-scale", type=float, default=0.1, help="std of the random beta (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="probe seed, ≥ 0 (default 0)")
    p.add_argument("--method", default="auto", choices=("auto", "dense", "iterative"),
                   help="dense eigensolve, iterative (Lanczos) or auto: dense up to d = 1024 (default auto)")
    p.add_argument("--max-d", type=int, default=8192, help="largest d accepted (default 8192; memory ≈ 32·d² bytes)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds one call of the norm may take (default 120)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("scan", help="read every norm of a checkpoint from its norm tensors alone (γ-only)")
    p.add_argument("path", help="checkpoint folder, .safetensors, sharded index, .gguf or CTranslate2 model.bin")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--output", default=None, help="also write the JSON report to this file (atomically)")
    p.add_argument("--plot", default=None, help="write a PNG of |gamma| and the kernel directions per site")
    p.add_argument("--baseline", default=None, help="a previous --json output: exit 1 if any site changed")
    p.add_argument("--max-angle", type=float, default=DEFAULT_MAX_ANGLE,
                   help="baseline: a kernel direction turning by more than this many radians is a change "
                        f"({DEFAULT_MAX_ANGLE:g})")
    p.add_argument("--arch", default=None, help="override the architecture (model_type or GGUF architecture)")
    p.add_argument("--dead-rel-tol", type=float, default=DEAD_CHANNEL_REL_TOL,
                   help=f"dead channel: |gamma_i| <= this * median |gamma| (default {DEAD_CHANNEL_REL_TOL:g})")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("prove", help="run the SymPy proofs of T1-T10 and write Markdown certificates")
    p.add_argument("--out", default="build/proofs", help="certificate folder (default build/proofs)")
    p.add_argument("--only", default=None, help="comma-separated theorems, e.g. T1,T3")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    p.set_defaults(func=_cmd_prove)
    p = sub.add_parser("verify", help="forward pass: measure every norm's predicted dead direction")
    p.add_argument("path", help="checkpoint folder (config.json + safetensors), a .gguf file, or random:<model_type>")
    p.add_argument("--tokens", type=int, default=2048, help="rows (token positions) per site (default 2048)")
    p.add_argument("--seq-len", type=int, default=None, help="text sequence length (default min(64, max positions))")
    p.add_argument("--batch-size", type=int, default=8, help="samples per forward pass (default 8)")
    p.add_argument("--max-input-gib", type=float, default=MAX_INPUT_BYTES / 2**30,
                   help=f"refuse inputs larger than this many GiB (default {MAX_INPUT_BYTES / 2**30:g})")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="where the forward runs; auto: accelerate device_map over every GPU, then the host")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16", "float64"),
                   help="forward dtype (default: the checkpoint's); measurements are float64 always")
    p.add_argument("--sites", default="all", choices=("all", "final"), help="measure all sites or only final norms")
    p.add_argument("--random-init", action="store_true", help="also measure the random-init twin, side by side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--output", default=None, help="also write the JSON report to this file (atomically)")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the covariance spectrum plot here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--fisher", action="store_true",
                   help="also measure the directional Fisher information along every parameter-space dead direction "
                        "(with --sites final: the LM head's directions only)")
    p.add_argument("--fisher-samples", type=int, default=2, help="samples used for --fisher (default 2)")
    p.add_argument("--fisher-random", type=int, default=4, help="random directions per dead direction (default 4)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("check-norm", help="fuzz a norm factory against the deadir algebra: "
                                          "exit 0 PASS, 1 FAIL (counterexample), 2 ERROR")
    p.add_argument("factory", help="package.module:factory, a callable d -> norm (torch, numpy, onnx, jax, keras)")
    p.add_argument("--expect", choices=("mean-centring", "group-centring", "rms"), default="mean-centring",
                   help="the algebra the norm must obey (default mean-centring)")
    p.add_argument("--properties", default=None,
                   help="comma-separated subset, e.g. 'T1 hyperplane,T2 kernel' (default: all of --expect)")
    p.add_argument("--reference", choices=("auto", "layernorm", "rmsnorm", "groupnorm", "none"), default="auto",
                   help="float64 formula the output must also match (auto: the class's own when known; none: off)")
    p.add_argument("--dtype", default="float32", choices=("float16", "bfloat16", "float32", "float64"))
    p.add_argument("--compute-dtype", default=None, choices=("float16", "bfloat16", "float32", "float64"),
                   help="declare the dtype the norm computes in (judged at its bound; the report says so)")
    p.add_argument("--framework", default="auto", choices=("auto", "torch", "numpy", "onnx", "jax", "keras"),
                   help="how to call the factory's product (default: detected from its type)")
    p.add_argument("--axis", type=int, default=-1, help="normalised axis of the norm's input (default -1)")
    p.add_argument("--layout", default="channels-last", choices=("channels-last", "channels-first"),
                   help="channels-first feeds (1, d, n, 1) inputs (timm LayerNorm2d, ConvNeXt)")
    p.add_argument("--normalized-shape", default=None, help="multi-dimensional normalised shape, e.g. 4,8")
    p.add_argument("--groups", type=int, default=None, help="channel groups (default: from the class, else 1)")
    p.add_argument("--gamma-attr", default=None, help="attribute holding the scale (default weight)")
    p.add_argument("--beta-attr", default=None, help="attribute holding the shift (default bias)")
    p.add_argument("--eps-attr", default=None, help="attribute holding eps (default eps / variance_epsilon)")
    p.add_argument("--eps", type=float, default=None, help="declare eps of a norm that exposes none (reference)")
    p.add_argument("--conditioned", action="store_true",
                   help="the norm is norm(x, cond) with deadir_affine(cond) -> (gamma, beta) per row (adaLN)")
    p.add_argument("--node", default=None, help="ONNX: the name of the norm node to test")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the module once (dynamic shapes); ERROR unless compiled code ran")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one call of the norm may take (default 120; 0 = no limit)")
    p.add_argument("--no-determinism", action="store_true", help="do not run each input twice")
    p.add_argument("--max-examples", type=int, default=100, help="Hypothesis examples per property (default 100)")
    p.add_argument("--max-d", type=int, default=64, help="largest hidden size drawn (default 64)")
    p.add_argument("--d", type=int, default=None, help="a fixed hidden size (default: drawn)")
    p.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: derandomized, reproducible)")
    p.add_argument("--weight-offset", type=float, default=None,
                   help="effective scale = weight + offset (1 for Gemma-style (1 + w)); default from the class")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_check_norm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deadir`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except DeadirError as exc:
        print(f"deadir {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
