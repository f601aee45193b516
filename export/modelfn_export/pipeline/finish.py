"""The last steps: optional int8 quantization and its agreement gate, the artifact, the card, the atomic commit.

The quantization steps run only when ``--quantize`` asks for int8: :func:`quantize_model` returns
nothing otherwise, and the steps that need a :class:`~.values.Quantized` are skipped.

Example:
    >>> final = place_artifact(fp32, evidence, workspace, quantization=None)   # doctest: +SKIP
    >>> final.quantization                                                      # doctest: +SKIP
    {'mode': 'none'}
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE, ModelCard

from .. import card as cards
from ..cpu import int8_features
from ..errors import FAILED, ExportError
from ..options import ExportOptions
from ..parity import Batch, run_onnx
from ..progress import Steps
from ..quantize import card_entry, latency, measure, quantize_dynamic_int8, quantize_static_int8, speedups
from ..sources import LoadedSource
from .values import (
    CustomOps,
    EvidenceCheck,
    FinalArtifact,
    Fp32Model,
    Int8Verdict,
    Latency,
    Quantization,
    Quantized,
    Samples,
    Stored,
    Workspace,
)

Quantizer = Callable[[Path, Path, Path, list[Batch]], None]
"""``(fp32 model, int8 model to write, scratch directory, samples)``."""

QUANTIZERS: dict[str, Quantizer] = {
    "int8": lambda src, dst, work, batches: quantize_dynamic_int8(src, dst, work),
    "int8-static": quantize_static_int8,
}
"""The quantizer of each canonical ``--quantize`` mode."""


def quantize_model(
    fp32: Fp32Model, samples: Samples, options: ExportOptions, workspace: Workspace, progress: Steps
) -> Quantized | None:
    """Quantize the fp32 model (``options.quantize``) and score it against fp32 on the samples; nothing for ``none``."""
    if not options.quantizing:
        return None
    mode = options.quantize
    with progress.step(f"quantizing ({mode}) and measuring agreement with fp32"):
        path = workspace.work / "quantized.onnx"
        QUANTIZERS[mode](fp32.path, path, workspace.work, samples.batches)
        report = measure(fp32.outputs, run_onnx(path, samples.batches))
    return Quantized(path, mode, report)


def require_agreement(quantized: Quantized, evidence: EvidenceCheck, options: ExportOptions, progress: Steps) -> None:
    """The agreement gate: refuse non-finite int8 outputs, and agreement below the threshold unless forced."""
    report, threshold = quantized.report, options.quantize_threshold
    if not report.finite:
        raise ExportError(
            "the quantized model produces NaN/Inf or differently shaped outputs",
            "export with --quantize none",
            exit_code=FAILED,
        )
    if report.agreement < threshold and not options.force_quantized:
        raise ExportError(
            f"quantized model agrees with fp32 only {report.agreement:.3f} on output "
            f"'{report.worst()}' (threshold {threshold:g})",
            "export with --quantize none, pass representative --samples, or accept it with --force-quantized",
            exit_code=FAILED,
        )
    progress.note(
        f"quantization agreement {report.agreement:.3f} (threshold {threshold:g})"
        + (" — FORCED below threshold" if report.agreement < threshold else "")
        + ("" if evidence.informative else " — uninformative evidence")
    )


def measure_latency(fp32: Fp32Model, quantized: Quantized, samples: Samples, progress: Steps) -> Latency:
    """Single-row and full-batch latencies of both models, interleaved (:func:`modelfn_export.quantize.latency`)."""
    with progress.step("measuring int8 and fp32 latency (one thread, as served)"):
        figures = latency({"fp32": fp32.path, "int8": quantized.path}, samples.batches)
    return Latency(fp32=figures["fp32"], int8=figures["int8"])


def judge_speed(speed: Latency, quantized: Quantized, options: ExportOptions, progress: Steps) -> Int8Verdict:
    """Report int8's measured speedup over fp32 on this CPU; warn (and the card records it) when int8 is slower
    or was kept below the agreement threshold."""
    cpu = int8_features()
    ratios = speedups(speed.fp32, speed.int8)
    instructions = ", ".join(cpu["int8_dot_product"]) or "none"
    progress.note(f"int8 vs fp32 on this CPU ({cpu['model']}; int8 dot-product instructions: {instructions}): " + ", ".join(
        f"{key.replace('_', ' ')} {speed.fp32[key + '_ms']:.3g} -> {speed.int8[key + '_ms']:.3g} ms ({ratio:.2f}x)"
        for key, ratio in ratios.items()))
    warnings = []
    slower = [f"{key.replace('_', ' ')} {ratio:.2f}x" for key, ratio in ratios.items() if ratio < 1]
    if slower:
        warnings.append(
            f"int8 is slower than fp32 on this CPU ({', '.join(slower)}; int8 dot-product instructions: {instructions}): "
            "int8 pays on CPUs with VNNI/AMX (x86) or dot product (Arm, Graviton2 and later); measure on the deployed "
            "function (modelfn bench) or export with --quantize none"
        )
    report, threshold = quantized.report, options.quantize_threshold
    if report.agreement < threshold:
        warnings.append(f"int8 agrees with fp32 only {report.agreement:.3f} on output '{report.worst()}' "
                        f"(threshold {threshold:g}), kept because of --force-quantized")
    for warning in warnings:
        progress.note(f"WARNING: {warning}")
    return Int8Verdict(speedup=ratios, cpu=cpu, warnings=warnings)


def record_quantization(
    quantized: Quantized, fp32: Fp32Model, evidence: EvidenceCheck, samples: Samples, options: ExportOptions,
    speed: Latency | None, verdict: Int8Verdict | None,
) -> Quantization:
    """The card's ``quantization`` object for the int8 artifact."""
    report, threshold = quantized.report, options.quantize_threshold
    return Quantization(quantized.path, card_entry(
        report,
        mode=quantized.mode,
        threshold=threshold,
        forced=options.force_quantized and report.agreement < threshold,
        fp32_bytes=fp32.path.stat().st_size,  # the size only: no need to hash the artifact for it
        size=quantized.path.stat().st_size,
        informative=evidence.informative,
        latency_ms=None if speed is None else {"fp32": speed.fp32, "int8": speed.int8},
        calibration_rows=samples.rows if quantized.mode == "int8-static" else None,
        speed=None if verdict is None else {"speedup_vs_fp32": verdict.speedup, "cpu": verdict.cpu, "warnings": verdict.warnings},
    ))


def place_artifact(
    fp32: Fp32Model, evidence: EvidenceCheck, workspace: Workspace, quantization: Quantization | None
) -> FinalArtifact:
    """Move the model to ship (int8 when quantized, else fp32) to ``model.onnx`` and describe its parity."""
    parity = fp32.report.to_card()
    parity["informative"] = evidence.informative
    parity["uninformative_allowed"] = evidence.accepted
    final = workspace.path / ARTIFACT_FILE
    if quantization is not None:
        parity["measured_on"] = "fp32 model before quantization"
        shutil.move(quantization.path, final)
        entry = quantization.entry
    else:
        parity["measured_on"] = "artifact"
        shutil.move(fp32.path, final)
        entry = {"mode": "none"}
    return FinalArtifact(final, parity, entry, fp32.optimization)


def write_card(
    final: FinalArtifact, loaded: LoadedSource, options: ExportOptions, workspace: Workspace, custom: CustomOps | None
) -> ModelCard:
    """Build the card from the final artifact, validate it against the schema, write it to the workspace."""
    card = cards.build_card(
        name=options.name,
        version=workspace.version,
        artifact_path=final.path,
        source=loaded.card_source(),
        parity=final.parity,
        quantization=final.quantization,
        optimization=final.optimization,
        description=options.description if options.description is not None else loaded.description,
        custom_ops=custom.entry if custom is not None else None,
    )
    card.write(workspace.path / CARD_FILE)
    return card


def commit(card: ModelCard, workspace: Workspace, progress: Steps) -> Stored:
    """Rename the workspace into place as ``<out>/<name>/<version>/`` (atomic; never over an existing version)."""
    target = workspace.staging.commit(card.version)
    progress.note(f"wrote {target}")
    return Stored(target)
