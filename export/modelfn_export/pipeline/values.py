"""The typed values the export steps hand each other (importing this module is free: no TensorFlow, no ONNX).

Each step takes some of these and returns one; :mod:`modelfn_export.pipeline.runner` passes them by
type. The seeds of a run are :class:`~modelfn_export.options.ExportOptions`, :class:`SourceInput`
and the progress reporter (:class:`~modelfn_export.progress.Steps`).

Example:
    >>> Samples(batches=[], label="generated").label
    'generated'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..parity import Batch, ParityReport
from ..quantize import QuantReport
from ..store import Staging


@dataclass(frozen=True)
class SourceInput:
    """What the caller passed as SOURCE: a path, ``module:function``, or a ``keras.Model``."""

    value: Any


@dataclass(frozen=True)
class CheckedSource:
    """A SOURCE that passed the checks that need no TensorFlow, with the label progress lines use."""

    value: Any
    label: str
    """``keras source 'digits.keras'``, ``in-memory Keras model``, ..."""


@dataclass(frozen=True)
class Toolchain:
    """TensorFlow, Keras, tf2onnx and ONNX are imported (steps that need them take this)."""


@dataclass(frozen=True)
class Workspace:
    """Where this export is built: a staging directory in the store, renamed into place at the end."""

    staging: Staging
    work: Path
    """Scratch files (converted, optimized, quantized models); removed before the rename."""
    version: str
    """The version this export will be written as."""

    @property
    def path(self) -> Path:
        """The staging directory: what ends up as ``<out>/<name>/<version>/``."""
        return self.staging.path


@dataclass(frozen=True)
class Converted:
    """The ONNX model straight from tf2onnx (checked with ``onnx.checker``)."""

    path: Path


@dataclass(frozen=True)
class CustomOps:
    """The custom-op library the converted model needs: the card's ``custom_ops`` (sessions register it)."""

    entry: dict[str, Any]
    """``{"library": ..., "version": ..., "domain": ..., "ops": [...]}``."""


@dataclass(frozen=True)
class Samples:
    """The parity (and calibration) samples, as batches of feeds keyed by input name."""

    batches: list[Batch]
    label: str
    """The samples file's name, or ``generated``."""

    @property
    def rows(self) -> int:
        """Rows over all batches."""
        return sum(len(next(iter(batch.values()))) for batch in self.batches)


@dataclass(frozen=True)
class Parity:
    """TensorFlow's outputs on the samples, and how the converted model compares with them."""

    reference: list[Batch]
    report: ParityReport


@dataclass(frozen=True)
class EvidenceCheck:
    """Whether the parity evidence is informative, and whether the user accepted it when it is not."""

    informative: bool
    accepted: bool
    """Uninformative evidence accepted with ``allow_uninformative_parity``."""


@dataclass(frozen=True)
class Optimized:
    """The model after ONNX Runtime's offline optimization, re-checked against TensorFlow."""

    path: Path
    level: str
    outputs: list[Batch]
    report: ParityReport


@dataclass(frozen=True)
class Fp32Model:
    """The fp32 model the rest of the export uses: optimized if that passed parity, else as converted."""

    path: Path
    outputs: list[Batch]
    report: ParityReport
    optimization: dict[str, Any]
    """The card's ``optimization`` object."""


@dataclass(frozen=True)
class Quantized:
    """The int8 model and its agreement with the fp32 model on the samples."""

    path: Path
    mode: str
    report: QuantReport


@dataclass(frozen=True)
class Latency:
    """Median ONNX Runtime CPU latencies (``batch_1_ms``, ``batch_<n>_ms``) of the fp32 and int8 models."""

    fp32: dict[str, float]
    int8: dict[str, float]


@dataclass(frozen=True)
class Int8Verdict:
    """What int8 buys on this CPU: speedup over fp32 per figure, the CPU's int8 instructions, warnings."""

    speedup: dict[str, float]
    """``fp32 ms / int8 ms`` (``batch_1``, ``batch_<n>``): below 1, int8 is slower."""
    cpu: dict[str, Any]
    warnings: list[str]


@dataclass(frozen=True)
class Quantization:
    """The int8 model to ship and the card's ``quantization`` object that describes it."""

    path: Path
    entry: dict[str, Any]


@dataclass(frozen=True)
class FinalArtifact:
    """The final ``model.onnx`` in the staging directory and the card sections that describe it."""

    path: Path
    parity: dict[str, Any]
    quantization: dict[str, Any]
    optimization: dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """The committed version directory ``<out>/<name>/<version>/``."""

    path: Path
