"""``export_model``: TensorFlow/Keras SOURCE -> verified ``model.onnx`` + ``modelcard.json`` in the store.

The keyword arguments become one validated :class:`~modelfn_export.options.ExportOptions` (before
TensorFlow is imported, so bad input fails instantly), and the export runs as the pipeline of named
steps in :mod:`modelfn_export.pipeline`: check -> import -> load -> stage -> convert -> samples ->
parity (+ gate, evidence check) -> optimize (+ parity again) -> optional int8 quantization (+ its
agreement check) -> artifact -> card -> atomic rename into ``<out>/<name>/<version>/``. Any failure
leaves nothing behind.

Example:
    >>> from modelfn_export import export_model
    >>> card = export_model("digits.keras", "digits", quantize="int8", samples="x_test.npy")  # doctest: +SKIP
    >>> card.version, card.artifact.bytes, card.quantization["top1_agreement_with_fp32"]         # doctest: +SKIP
    ('1', 9216, 1.0)
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

from modelfn_runtime.modelcard import ModelCard

from .options import ExportOptions
from .pipeline import run_pipeline
from .progress import ProgressFn


def export_model(
    source: str | os.PathLike[str] | Any, name: str, *, progress: ProgressFn | None = None, **options: Any
) -> ModelCard:
    """Export ``source`` as version ``version`` of model ``name`` into the store at ``out``.

    Args:
        source: a ``.keras``/``.h5`` file, a SavedModel directory, ``package.module:function``
            (returning a ``keras.Model``), or a ``keras.Model`` instance.
        name: model name, ``^[a-z0-9][a-z0-9-]{0,62}$``.
        progress: called with one line per step start/end (e.g. ``print``).
        **options: the fields of :class:`~modelfn_export.options.ExportOptions` besides ``name``:
            ``version``, ``opset``, ``quantize``, ``samples``, ``rtol``, ``atol``, ``out``,
            ``signature``, ``force_quantized``, ``quantize_threshold``, ``description``,
            ``allow_uninformative_parity`` (documented there).

    Returns:
        The written :class:`~modelfn_runtime.modelcard.ModelCard`; the files are in
        ``<out>/<name>/<card.version>/``.

    Raises:
        ExportError: with a one-line message naming the problem and the fix; ``exit_code`` 2 for
            bad input, 1 for a failed step. Nothing is written when it is raised.
        TypeError: an unknown keyword argument (the message names the closest option).
    """
    return run_pipeline(source, ExportOptions.from_keywords("export_model", name, options), progress)


def _signature() -> inspect.Signature:
    """``export_model``'s real signature, for ``help()`` and IDEs: SOURCE, NAME, then every option by keyword."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("source", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str | os.PathLike[str] | Any"),
        inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str"),
    ]
    for field in dataclasses.fields(ExportOptions):
        if field.name != "name":
            params.append(inspect.Parameter(field.name, keyword, default=field.default, annotation=field.type))
    params.append(inspect.Parameter("progress", keyword, default=None, annotation="ProgressFn | None"))
    return inspect.Signature(params, return_annotation="ModelCard")


export_model.__signature__ = _signature()  # type: ignore[attr-defined]
