"""The export as a pipeline of named steps: :data:`EXPORT_PIPELINE` and :func:`run_pipeline`.

=================  ====================================================================  =====================
step               does                                                                  returns
=================  ====================================================================  =====================
``check``          version free, source exists and is a known kind, samples file exists  ``CheckedSource``
``import``         TensorFlow (quietly), Keras, ONNX, tf2onnx                            ``Toolchain``
``load``           the source as a flat-signature ``tf.function``                        ``LoadedSource``
``stage``          the version, a staging directory in the store (removed on failure)    ``Workspace``
``conversion``     how tf2onnx runs: modelfn's op handlers                               ``Conversion``
``nested-          inline function calls left in the frozen graph (ConvNeXt's XLA        ``Conversion``
functions``        grouped convs)
``text-ops``       raw-text models: string ops as ``ai.onnx.contrib`` ops, or a refusal  ``Conversion``
``keras-hub-       a keras-hub WordPieceTokenizer: its graph built from its config       ``Conversion``
tokenizer``
``convert``        tf2onnx, ``onnx.checker``                                             ``Converted``
``custom-ops``     the custom-op library the model needs (onnxruntime-extensions)        ``CustomOps``
``samples``        ``--samples``, or generated from the signature                        ``Samples``
``parity``         TensorFlow vs ONNX Runtime on the samples                             ``Parity``
``parity-gate``    refuse a model that does not reproduce TensorFlow
``evidence``       refuse outputs that do not depend on the input (unless accepted)      ``EvidenceCheck``
``optimize``       ORT offline optimization (basic), parity again                        ``Optimized``
``fp32``           the optimized model if it passed, else the converted one              ``Fp32Model``
``quantize``       int8 (dynamic or static QDQ), agreement measured; only when asked     ``Quantized``
``agreement``      refuse non-finite or below-threshold int8 (unless forced)
``latency``        fp32 and int8 latencies, interleaved, one thread as served            ``Latency``
``speed``          int8's speedup over fp32 on this CPU; warnings when slower or forced  ``Int8Verdict``
``quantization``   the card's quantization object                                        ``Quantization``
``artifact``       ``model.onnx`` in the staging directory, the card's parity object     ``FinalArtifact``
``card``           ``modelcard.json``, validated against the schema                      ``ModelCard``
``store``          atomic rename to ``<out>/<name>/<version>/``                          ``Stored``
=================  ====================================================================  =====================

The options were validated before the run (:class:`~modelfn_export.options.ExportOptions`), and
``check`` runs before ``import``: bad input never waits for TensorFlow. The runner
(:mod:`.runner`) passes values between steps by type and unwinds the staging directory when any step
raises, so a failed export leaves nothing behind.

**Adding a step.** Write a function whose parameters and return value are typed with the values of
:mod:`.values` (or a new frozen dataclass there), wrap it in a :class:`Step`, and insert it::

    def inline_functions(loaded: LoadedSource, progress: Steps) -> LoadedSource:
        ...                                   # runs before convert, refines the loaded source

    pipeline = EXPORT_PIPELINE.insert(Step("inline", inline_functions), before="convert")

A step returning a value of a type already produced replaces it for the steps after it; a new type
is available to the steps after it (a parameter typed ``X | None`` takes it when present); a step
that returns ``None`` produces nothing, and steps needing what it would have produced are skipped.
Reporting goes through the ``progress: Steps`` parameter (``progress.step(...)``, ``progress.note(...)``),
refusals are :class:`~modelfn_export.errors.ExportError`, and files belong in ``workspace.work``.
Wiring is checked when the pipeline is built.

Example:
    >>> EXPORT_PIPELINE.names[:4]
    ['check', 'import', 'load', 'stage']
    >>> card = run_pipeline("digits.keras", ExportOptions("digits"), print)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from modelfn_runtime.modelcard import ModelCard

from ..errors import ExportError
from ..options import ExportOptions
from ..progress import ProgressFn, Steps
from . import conversion, finish, prepare, verify
from .runner import Pipeline, PipelineError, Step
from .values import SourceInput

EXPORT_STEPS: tuple[Step, ...] = (
    Step("check", prepare.check_inputs),
    Step("import", prepare.import_tools),
    Step("load", prepare.load_model),
    Step("stage", prepare.open_workspace),
    Step("conversion", conversion.plan_conversion),
    Step("nested-functions", conversion.inline_functions),
    Step("text-ops", conversion.text_conversion),
    Step("keras-hub-tokenizer", conversion.keras_hub_tokenizer),
    Step("convert", verify.convert_model),
    Step("custom-ops", conversion.record_custom_ops),
    Step("samples", verify.read_samples),
    Step("parity", verify.check_parity),
    Step("parity-gate", verify.require_parity),
    Step("evidence", verify.require_evidence),
    Step("optimize", verify.optimize_model),
    Step("fp32", verify.choose_fp32),
    Step("quantize", finish.quantize_model),
    Step("agreement", finish.require_agreement),
    Step("latency", finish.measure_latency),
    Step("speed", finish.judge_speed),
    Step("quantization", finish.record_quantization),
    Step("artifact", finish.place_artifact),
    Step("card", finish.write_card),
    Step("store", finish.commit),
)

SEEDS = (ExportOptions, SourceInput, Steps)
"""What every export run starts from."""

EXPORT_PIPELINE = Pipeline(EXPORT_STEPS, seeds=SEEDS, expected=(ExportError,))
"""The export ``export_model`` runs."""


def run_pipeline(
    source: Any, options: ExportOptions, progress: ProgressFn | None = None, *, pipeline: Pipeline = EXPORT_PIPELINE
) -> ModelCard:
    """Run ``pipeline`` on ``source`` with ``options``; return the written card.

    Raises:
        ExportError: a one-line problem and fix; nothing is written.
    """
    return pipeline.run(options, SourceInput(source), Steps(progress), result=ModelCard)


__all__ = ["EXPORT_PIPELINE", "EXPORT_STEPS", "SEEDS", "Pipeline", "PipelineError", "Step", "run_pipeline"]
