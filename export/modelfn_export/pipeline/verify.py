"""The fp32 steps: convert, read the samples, the parity gate and the evidence check, optimize, pick the fp32 model.

Each gate is its own step after the measurement it judges, so its progress line reports the
measurement's time and a refusal comes after it, as one :class:`~modelfn_export.errors.ExportError`.

Example:
    >>> parity = check_parity(loaded, converted, samples, options, progress)   # doctest: +SKIP
    >>> require_parity(parity, progress)                                        # doctest: +SKIP
    >>> parity.report.max_abs_diff                                              # doctest: +SKIP
    5.96e-08
"""

from __future__ import annotations

from pathlib import Path

from .. import optimize as optimization
from ..convert import Conversion, convert
from ..errors import FAILED, ExportError
from ..options import ExportOptions
from ..parity import compare, generate_samples, load_samples, run_onnx, run_reference
from ..progress import Steps
from ..sources import LoadedSource
from .values import Converted, EvidenceCheck, Fp32Model, Optimized, Parity, Samples, Workspace


def convert_model(
    loaded: LoadedSource, options: ExportOptions, workspace: Workspace, progress: Steps, conversion: Conversion | None
) -> Converted:
    """tf2onnx conversion (:func:`modelfn_export.convert.convert`) as the ``conversion`` steps planned it, saved."""
    import onnx

    with progress.step(f"converting to ONNX (tf2onnx, opset {options.opset})"):
        model = convert(loaded, options.opset, conversion)
    path = workspace.work / "converted.onnx"
    onnx.save(model, path)
    return Converted(path)


def read_samples(loaded: LoadedSource, options: ExportOptions) -> Samples:
    """The user's ``--samples``, or seeded samples generated from the signature."""
    if options.samples is not None:
        return Samples(load_samples(options.samples, loaded.inputs), Path(options.samples).name)
    return Samples(generate_samples(loaded.inputs), "generated")


def check_parity(
    loaded: LoadedSource, converted: Converted, samples: Samples, options: ExportOptions, progress: Steps
) -> Parity:
    """Run TensorFlow and ONNX Runtime on the samples and compare (:func:`modelfn_export.parity.compare`)."""
    with progress.step("checking parity (TensorFlow vs ONNX Runtime)"):
        reference = run_reference(loaded, samples.batches)
        candidate = run_onnx(converted.path, samples.batches)
        report = compare(reference, candidate, rtol=options.rtol, atol=options.atol, samples=samples.label)
    return Parity(reference, report)


def require_parity(parity: Parity, progress: Steps) -> None:
    """The parity gate: refuse a converted model that does not reproduce TensorFlow."""
    report = parity.report
    if not report.passed:
        raise ExportError(
            f"parity failed: {report.failure()}",
            "the ONNX model does not reproduce TensorFlow; replace numerically unstable or "
            "nondeterministic layers, or loosen --atol/--rtol if the difference is acceptable",
            exit_code=FAILED,
        )
    progress.note(
        f"parity ok: max abs diff {report.max_abs_diff:.3g}, max rel diff {report.max_rel_diff:.3g}"
        + (f", top-1 agreement {report.top1_agreement:.3f}" if report.top1_agreement is not None else "")
    )


def require_evidence(parity: Parity, samples: Samples, options: ExportOptions, progress: Steps) -> EvidenceCheck:
    """Refuse parity evidence whose TensorFlow outputs barely depend on the input, unless accepted."""
    if parity.report.informative:
        return EvidenceCheck(informative=True, accepted=False)
    problem = (
        f"parity evidence is uninformative ({samples.label} samples): {parity.report.uninformative()}; "
        "TensorFlow's outputs barely depend on the input, so agreement cannot tell a correct "
        "conversion from a broken one"
    )
    if not options.allow_uninformative_parity:
        raise ExportError(
            problem,
            "pass representative --samples (for a randomly initialised model: calibrate BatchNorm "
            "statistics or drop the softmax head), or accept it with --allow-uninformative-parity",
            exit_code=FAILED,
        )
    progress.note(f"WARNING: {problem} — accepted (--allow-uninformative-parity)")
    return EvidenceCheck(informative=False, accepted=True)


def optimize_model(
    converted: Converted, parity: Parity, samples: Samples, options: ExportOptions, workspace: Workspace, progress: Steps
) -> Optimized:
    """ONNX Runtime's offline optimization (:mod:`modelfn_export.optimize`), then parity again."""
    with progress.step("optimizing (ONNX Runtime, basic level) and re-checking parity"):
        path = workspace.work / "optimized.onnx"
        level = optimization.optimize(converted.path, path)
        outputs = run_onnx(path, samples.batches)
        report = compare(parity.reference, outputs, rtol=options.rtol, atol=options.atol, samples=samples.label)
    return Optimized(path, level, outputs, report)


def choose_fp32(converted: Converted, optimized: Optimized, parity: Parity, samples: Samples, progress: Steps) -> Fp32Model:
    """The optimized model if it passed parity, else the converted one (and the card says why)."""
    if optimized.report.passed:
        return Fp32Model(optimized.path, optimized.outputs, optimized.report, {"level": optimized.level, "tool": "onnxruntime"})
    progress.note(f"optimized model failed parity ({optimized.report.failure()}); keeping the unoptimized model")
    return Fp32Model(
        converted.path,
        run_onnx(converted.path, samples.batches),
        parity.report,
        {"level": "disabled", "tool": "onnxruntime", "note": "optimized model failed parity"},
    )
