"""``export_model``: TensorFlow/Keras SOURCE -> verified ``model.onnx`` + ``modelcard.json`` in the store.

Steps: validate arguments (before TensorFlow is imported, so bad input fails instantly) -> import
TensorFlow -> load the source -> convert with tf2onnx -> parity gate (TF vs ONNX Runtime) -> offline
ORT optimization (basic) and parity again -> the evidence check (parity must compare outputs that
depend on the input) -> optional int8 quantization (dynamic, or static QDQ calibrated on the
samples) with its agreement check -> card built from the final artifact and validated -> atomic rename into
``<out>/<name>/<version>/``. Any failure leaves nothing behind.

Example:
    >>> from modelfn_export import export_model
    >>> card = export_model("digits.keras", "digits", quantize="int8", samples="x_test.npy")  # doctest: +SKIP
    >>> card.version, card.artifact.bytes, card.quantization["top1_agreement_with_fp32"]         # doctest: +SKIP
    ('1', 9216, 1.0)
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE, ModelCard

from . import store as store_mod
from .convert import check_opset
from .defaults import DEFAULT_ATOL, DEFAULT_OPSET, DEFAULT_RTOL, DEFAULT_SIGNATURE, DEFAULT_STORE, DEFAULT_THRESHOLD
from .errors import FAILED, ExportError
from .progress import ProgressFn, Steps
from .quantize import check_mode, check_threshold


def export_model(
    source: str | os.PathLike[str] | Any,
    name: str,
    *,
    version: str | int | None = None,
    opset: int = DEFAULT_OPSET,
    quantize: str = "none",
    samples: str | os.PathLike[str] | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    out: str | os.PathLike[str] = DEFAULT_STORE,
    signature: str = DEFAULT_SIGNATURE,
    force_quantized: bool = False,
    quantize_threshold: float = DEFAULT_THRESHOLD,
    description: str | None = None,
    progress: ProgressFn | None = None,
    allow_uninformative_parity: bool = False,
) -> ModelCard:
    """Export ``source`` as version ``version`` of model ``name`` into the store at ``out``.

    Args:
        source: a ``.keras``/``.h5`` file, a SavedModel directory, ``package.module:function``
            (returning a ``keras.Model``), or a ``keras.Model`` instance.
        name: model name, ``^[a-z0-9][a-z0-9-]{0,62}$``.
        version: positive integer; default: highest existing version + 1 (1 for a new model).
            An existing version is never overwritten.
        opset: ONNX opset, 13–18.
        quantize: ``"none"``, ``"int8"`` (dynamic int8 weights; alias ``"dynamic"``) or
            ``"int8-static"`` (QDQ int8 weights and activations calibrated on ``samples``; alias
            ``"static"``).
        samples: ``.npy`` (single input) or ``.npz`` (keyed by input name) parity samples; default:
            generated batches of 1 and 32. Required for ``int8-static`` (the calibration set).
        rtol, atol: parity tolerances, ``|onnx - tf| <= atol + rtol * |tf|``.
        out: the model store directory.
        signature: SavedModel signature to export.
        force_quantized: keep a quantized model whose agreement is below ``quantize_threshold``.
        quantize_threshold: minimum agreement of the quantized model with fp32 (0–1).
        description: the card's description (default: a description of the source model).
        progress: called with one line per step start/end (e.g. ``print``).
        allow_uninformative_parity: write the model even when the TensorFlow outputs barely depend on
            the samples (parity and quantization agreement then prove little); recorded in the card.

    Returns:
        The written :class:`~modelfn_runtime.modelcard.ModelCard`; the files are in
        ``<out>/<name>/<card.version>/``.

    Raises:
        ExportError: with a one-line message naming the problem and the fix; ``exit_code`` 2 for
            bad input, 1 for a failed step. Nothing is written when it is raised.
    """
    # --- cheap validation: no TensorFlow import yet ---
    store_mod.validate_name(name)
    check_opset(opset)
    mode = check_mode(quantize)
    if mode == "int8-static" and samples is None:
        raise ExportError(
            "--quantize int8-static needs a calibration set",
            "pass --samples with a few hundred representative inputs, or use --quantize int8 (dynamic, no calibration)",
        )
    check_threshold(quantize_threshold)
    for label, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ExportError(f"--{label} {value} is invalid", f"use a finite number >= 0 (default {DEFAULT_RTOL if label == 'rtol' else DEFAULT_ATOL})")
    if version is not None:
        version = store_mod.validate_version(version)
        store_mod.check_version_free(out, name, version)
    if isinstance(source, (str, os.PathLike)):
        from .sources import classify_source

        spec = classify_source(source)
        source_label = f"{spec.kind} source '{spec.location}'"
    else:
        source_label = "in-memory Keras model"
    if samples is not None and not Path(samples).is_file():
        raise ExportError(f"samples file '{samples}' does not exist", "pass an existing .npy or .npz file to --samples")

    steps = Steps(progress)
    with steps.step("importing TensorFlow"):
        from .sources import import_tensorflow, load_source

        import_tensorflow()
        import keras  # noqa: F401
        import onnx
        import tf2onnx  # noqa: F401

        from .card import build_card
        from .convert import convert
        from .optimize import optimize
        from .parity import compare, generate_samples, load_samples, run_onnx, run_reference
        from .quantize import card_entry, latency, measure, quantize_dynamic_int8, quantize_static_int8

    with steps.step(f"loading {source_label}"):
        loaded = load_source(source, signature)
    with steps.step(f"converting to ONNX (tf2onnx, opset {opset})"):
        model = convert(loaded, opset)

    if version is None:
        version = store_mod.next_version(out, name)
    with store_mod.Staging(out, name) as stage:
        work = stage.path / "work"
        work.mkdir()
        converted = work / "converted.onnx"
        onnx.save(model, converted)
        del model

        if samples is not None:
            batches = load_samples(samples, loaded.inputs)
            samples_label = Path(samples).name
        else:
            batches = generate_samples(loaded.inputs)
            samples_label = "generated"

        with steps.step("checking parity (TensorFlow vs ONNX Runtime)"):
            reference = run_reference(loaded, batches)
            report = compare(reference, run_onnx(converted, batches), rtol=rtol, atol=atol, samples=samples_label)
        if not report.passed:
            raise ExportError(
                f"parity failed: {report.failure()}",
                "the ONNX model does not reproduce TensorFlow; replace numerically unstable or "
                "nondeterministic layers, or loosen --atol/--rtol if the difference is acceptable",
                exit_code=FAILED,
            )
        steps.note(
            f"parity ok: max abs diff {report.max_abs_diff:.3g}, max rel diff {report.max_rel_diff:.3g}"
            + (f", top-1 agreement {report.top1_agreement:.3f}" if report.top1_agreement is not None else "")
        )
        informative = report.informative
        if not informative:
            problem = (
                f"parity evidence is uninformative ({samples_label} samples): {report.uninformative()}; "
                "TensorFlow's outputs barely depend on the input, so agreement cannot tell a correct "
                "conversion from a broken one"
            )
            if not allow_uninformative_parity:
                raise ExportError(
                    problem,
                    "pass representative --samples (for a randomly initialised model: calibrate BatchNorm "
                    "statistics or drop the softmax head), or accept it with --allow-uninformative-parity",
                    exit_code=FAILED,
                )
            steps.note(f"WARNING: {problem} — accepted (--allow-uninformative-parity)")

        with steps.step("optimizing (ONNX Runtime, basic level) and re-checking parity"):
            optimized = work / "optimized.onnx"
            level = optimize(converted, optimized)
            fp32_outputs = run_onnx(optimized, batches)
            optimized_report = compare(reference, fp32_outputs, rtol=rtol, atol=atol, samples=samples_label)
        optimization: dict[str, Any] = {"level": level, "tool": "onnxruntime"}
        if optimized_report.passed:
            fp32_path, report = optimized, optimized_report
        else:
            steps.note(f"optimized model failed parity ({optimized_report.failure()}); keeping the unoptimized model")
            fp32_path = converted
            fp32_outputs = run_onnx(converted, batches)
            optimization = {"level": "disabled", "tool": "onnxruntime", "note": "optimized model failed parity"}

        final = stage.path / ARTIFACT_FILE
        parity = report.to_card()
        parity["informative"] = informative
        parity["uninformative_allowed"] = bool(allow_uninformative_parity and not informative)
        if mode != "none":
            with steps.step(f"quantizing ({mode}) and measuring agreement with fp32"):
                quantized = work / "quantized.onnx"
                if mode == "int8-static":
                    quantize_static_int8(fp32_path, quantized, work, batches)
                else:
                    quantize_dynamic_int8(fp32_path, quantized, work)
                qreport = measure(fp32_outputs, run_onnx(quantized, batches))
            if not qreport.finite:
                raise ExportError(
                    "the quantized model produces NaN/Inf or differently shaped outputs",
                    "export with --quantize none",
                    exit_code=FAILED,
                )
            if qreport.agreement < quantize_threshold and not force_quantized:
                raise ExportError(
                    f"quantized model agrees with fp32 only {qreport.agreement:.3f} on output "
                    f"'{qreport.worst()}' (threshold {quantize_threshold:g})",
                    "export with --quantize none, pass representative --samples, or accept it with --force-quantized",
                    exit_code=FAILED,
                )
            steps.note(
                f"quantization agreement {qreport.agreement:.3f} (threshold {quantize_threshold:g})"
                + (" — FORCED below threshold" if qreport.agreement < quantize_threshold else "")
                + ("" if informative else " — uninformative evidence")
            )
            quantization = card_entry(
                qreport,
                mode=mode,
                threshold=quantize_threshold,
                forced=force_quantized and qreport.agreement < quantize_threshold,
                fp32_bytes=fp32_path.stat().st_size,  # the size only: no need to hash the artifact for it
                size=quantized.stat().st_size,
                informative=informative,
                latency_ms={"fp32": latency(fp32_path, batches), "int8": latency(quantized, batches)},
                calibration_rows=sum(len(next(iter(b.values()))) for b in batches) if mode == "int8-static" else None,
            )
            parity["measured_on"] = "fp32 model before quantization"
            shutil.move(quantized, final)
        else:
            quantization = {"mode": "none"}
            parity["measured_on"] = "artifact"
            shutil.move(fp32_path, final)

        card = build_card(
            name=name,
            version=version,
            artifact_path=final,
            source=loaded.card_source(),
            parity=parity,
            quantization=quantization,
            optimization=optimization,
            description=description if description is not None else loaded.description,
        )
        card.write(stage.path / CARD_FILE)
        target = stage.commit(version)
    steps.note(f"wrote {target}")
    return card
