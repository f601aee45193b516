"""The ``export`` and ``push`` subcommands.

Register them on any argparse parser you own::

    parser = argparse.ArgumentParser(prog="modelfn")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_export_parser(subparsers)
    add_push_parser(subparsers)
    args = parser.parse_args()
    sys.exit(args.func(args))

Each subcommand sets ``func``, which takes the parsed Namespace and returns the exit code: 0 on
success, 2 for bad input, 1 for a failed step. Errors are printed as ONE line on stderr,
``error: <problem> — <fix>``, never as a traceback (set ``MODELFN_DEBUG=1`` to get the traceback of
an unexpected error). Progress lines go to stderr, the summary to stdout.

``python -m modelfn_export export|push ...`` runs the two subcommands standalone.

Importing this module is cheap: TensorFlow is only imported when ``export`` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .defaults import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    DEFAULT_RTOL,
    DEFAULT_SIGNATURE,
    DEFAULT_STORE,
    DEFAULT_THRESHOLD,
    MAX_OPSET,
    MIN_OPSET,
    QUANTIZE_MODES,
)
from .errors import FAILED, ExportError, one_line

EXPORT_HELP = "convert a TensorFlow/Keras model to a verified ONNX model + model card in the store"
PUSH_HELP = "upload an exported model version to S3"


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to ``subparsers`` (from ``parser.add_subparsers()``)."""
    p = subparsers.add_parser(
        "export",
        help=EXPORT_HELP,
        description=(
            f"{EXPORT_HELP}. Writes <out>/<name>/<version>/model.onnx and modelcard.json atomically, "
            "after checking that ONNX Runtime reproduces TensorFlow (the parity gate)."
        ),
    )
    p.add_argument("source", metavar="SOURCE", help="a .keras file, a SavedModel directory, or package.module:function returning a keras.Model")
    p.add_argument("--name", required=True, help="model name: lowercase letters, digits and '-', at most 63 characters")
    p.add_argument("--version", default=None, help="version number (default: the highest existing version + 1)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, {MIN_OPSET}–{MAX_OPSET} (default {DEFAULT_OPSET})")
    p.add_argument(
        "--quantize", choices=QUANTIZE_MODES, default="none",
        help="int8: dynamic int8 weights (alias dynamic); int8-static: QDQ int8 weights and activations "
        "calibrated on --samples (alias static); checked against fp32 (default none)",
    )
    p.add_argument("--quantize-threshold", type=float, default=DEFAULT_THRESHOLD, help=f"minimum agreement of the quantized model with fp32, 0–1 (default {DEFAULT_THRESHOLD})")
    p.add_argument("--force-quantized", action="store_true", help="keep a quantized model below the threshold (recorded as forced in the card)")
    p.add_argument("--samples", default=None, metavar="X.npy|X.npz", help="parity samples: .npy for a single input, .npz keyed by input name (default: generated)")
    p.add_argument(
        "--allow-uninformative-parity", action="store_true",
        help="write the model even if its outputs barely depend on the samples (recorded in the card)",
    )
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help=f"parity relative tolerance (default {DEFAULT_RTOL:g})")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"parity absolute tolerance (default {DEFAULT_ATOL:g})")
    p.add_argument("--signature", default=DEFAULT_SIGNATURE, help=f"SavedModel signature to export (default {DEFAULT_SIGNATURE})")
    p.add_argument("--description", default=None, help="the model card's description (default: describes the source)")
    p.add_argument("--out", default=DEFAULT_STORE, metavar="DIR", help=f"model store directory (default {DEFAULT_STORE})")
    p.set_defaults(func=run_export)
    return p


def add_push_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``push`` subcommand to ``subparsers`` (from ``parser.add_subparsers()``)."""
    p = subparsers.add_parser(
        "push",
        help=PUSH_HELP,
        description=(
            f"{PUSH_HELP}: model.onnx and modelcard.json go to s3://BUCKET/<prefix><name>/<version>/ "
            "with their sha256 as object metadata. A different artifact at an existing version is refused; "
            "the same one is a no-op."
        ),
    )
    p.add_argument("ref", metavar="NAME[/VERSION]", help="model name, optionally /version (default: the latest in the store)")
    p.add_argument("--bucket", required=True, help="destination S3 bucket")
    p.add_argument("--prefix", default="", help="key prefix, e.g. models/ (a trailing / is added when missing)")
    p.add_argument(
        "--kms-key-id", default=None, metavar="KEY",
        help="KMS key (ARN, id or alias/<stack>-models) for SSE-KMS; default: aws:kms with the bucket's default key",
    )
    p.add_argument("--store", default=DEFAULT_STORE, metavar="DIR", help=f"model store directory (default {DEFAULT_STORE})")
    p.set_defaults(func=run_push)
    return p


# --- running -------------------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    """``func`` of the export subcommand."""
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def body() -> int:
        from pathlib import Path

        from .api import export_model

        card = export_model(
            args.source,
            args.name,
            version=args.version,
            opset=args.opset,
            quantize=args.quantize,
            samples=args.samples,
            rtol=args.rtol,
            atol=args.atol,
            out=args.out,
            signature=args.signature,
            force_quantized=args.force_quantized,
            quantize_threshold=args.quantize_threshold,
            description=args.description,
            progress=progress,
            allow_uninformative_parity=args.allow_uninformative_parity,
        )
        print(format_summary(card, Path(args.out) / card.name / card.version))
        print(next_steps(card, args.out), file=sys.stderr)
        return 0

    return _guard(body)


def run_push(args: argparse.Namespace) -> int:
    """``func`` of the push subcommand."""

    def body() -> int:
        from .push import parse_ref, push_model

        name, version = parse_ref(args.ref)
        result = push_model(name, version, bucket=args.bucket, prefix=args.prefix, store=args.store, kms_key_id=args.kms_key_id)
        if result.status == "unchanged":
            print(f"unchanged: {result.uri} already holds {result.name}/{result.version} (sha256 {result.sha256}); nothing uploaded")
        elif result.status == "completed":
            print(f"completed: {result.uri} already held model.onnx (sha256 {result.sha256}); uploaded the missing modelcard.json")
        else:
            print(f"uploaded {result.name}/{result.version} to {result.uri} (model.onnx sha256 {result.sha256}, modelcard.json)")
        return 0

    return _guard(body)


def _guard(body: Callable[[], int]) -> int:
    try:
        return body()
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted — nothing was written; run the command again", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if os.environ.get("MODELFN_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)[:300]} — this is a bug in modelfn export; "
            "rerun with MODELFN_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return FAILED


# --- summary -------------------------------------------------------------------------------------


def format_size(size: int) -> str:
    """``9.2 KiB (9,416 bytes)``."""
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if size < 1024 else f"{value:.1f} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"


def format_summary(card: Any, directory: Any) -> str:
    """The table printed after a successful export."""
    from modelfn_runtime.modelcard import ARTIFACT_FILE

    rows: list[tuple[str, str]] = [
        ("name", card.name),
        ("version", card.version),
        ("path", str(os.path.join(directory, ARTIFACT_FILE))),
        ("size", format_size(card.artifact.bytes)),
        ("opset", str(card.opset)),
    ]
    for spec in card.inputs:
        rows.append(("input", f"{spec.name}  {spec.datatype}  {spec.shape}"))
    for spec in card.outputs:
        rows.append(("output", f"{spec.name}  {spec.datatype}  {spec.shape}"))
    parity = card.parity
    rows.append(("parity", f"max abs diff {parity['max_abs_diff']:.3g}, max rel diff {parity['max_rel_diff']:.3g} "
                           f"(rtol {parity['rtol']:g}, atol {parity['atol']:g}, {parity['samples']} samples)"))
    top1 = parity.get("top1_agreement")
    rows.append(("top-1 agreement", "n/a (no classifier output)" if top1 is None else f"{top1:.4f}"))
    if parity.get("informative") is False:
        rows.append(("evidence", "UNINFORMATIVE: outputs barely depend on the samples (--allow-uninformative-parity)"))
    quant = card.quantization or {"mode": "none"}
    if quant.get("mode") in ("int8", "int8-static", "dynamic"):
        q_top1 = quant.get("top1_agreement_with_fp32")
        text = (
            f"{quant.get('mode')} {quant.get('weight_type')}: agreement {quant.get('agreement', 0):.4f}"
            + (f" (top-1 {q_top1:.4f})" if q_top1 is not None else "")
            + f", max abs diff vs fp32 {quant.get('max_abs_diff_vs_fp32', 0):.3g}, "
            f"threshold {quant.get('threshold')}{', FORCED' if quant.get('forced') else ''}; "
            f"fp32 {format_size(int(quant.get('fp32_bytes', 0)))}"
        )
    else:
        text = "none"
    rows.append(("quantization", text))
    if quant.get("speedup_vs_fp32"):
        speed = ", ".join(f"{key.replace('_', ' ')} {ratio:.2f}x" for key, ratio in quant["speedup_vs_fp32"].items())
        instructions = ", ".join(quant.get("cpu", {}).get("int8_dot_product", [])) or "none"
        rows.append(("int8 speedup", f"{speed} vs fp32 on this CPU (int8 dot-product instructions: {instructions})"))
    for warning in quant.get("warnings", []):
        rows.append(("WARNING", warning))
    if card.custom_ops:
        rows.append(("custom ops", f"{card.custom_ops['library']} ({', '.join(card.custom_ops['ops'])})"))
    rows.append(("optimization", str((card.optimization or {}).get("level", "disabled"))))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in rows)


def next_steps(card: Any, out: str) -> str:
    """What to run after an export so the new version is served (printed to stderr after the summary)."""
    store = "" if os.path.normpath(out) == DEFAULT_STORE else f" --store {out}"
    lines = [
        "next steps:",
        f"  modelfn catalog add {card.name} --version {card.version}{store}   "
        "# point infra/catalog.yaml at this version and render template.yaml",
        "  modelfn local start-api   # serve it on 127.0.0.1:3000 from the local store (playground at /)",
        f"  modelfn push {card.name}/{card.version} --bucket BUCKET --prefix models/{store}   # then sam build && sam deploy",
    ]
    if store:
        lines.insert(3, f"    (start-api serves {DEFAULT_STORE}/; for {out} pass --env-vars with "
                        f'{{"<Function>": {{"MODEL_URI": "{out}/{card.name}/{card.version}"}}}})')
    return "\n".join(lines)


# --- standalone ----------------------------------------------------------------------------------


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``error: <problem> — <fix>``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {one_line(message)} — see '{self.prog} --help'\n")


def build_parser(prog: str = "python -m modelfn_export") -> argparse.ArgumentParser:
    """A parser with just the ``export`` and ``push`` subcommands."""
    parser = OneLineArgumentParser(prog=prog, description="Export TensorFlow/Keras models to verified ONNX and push them to S3.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{export,push}")
    add_export_parser(subparsers)
    add_push_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m modelfn_export``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
