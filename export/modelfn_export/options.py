"""The options of one export, as one typed object validated when it is built (importing this is free).

:class:`ExportOptions` holds everything ``export_model`` takes besides SOURCE and the progress
callback. Building one checks every value that can be checked without TensorFlow and without looking
at the disk, in a fixed order (name, opset, quantization mode, the calibration set ``int8-static``
needs, threshold, tolerances, version), so bad input fails instantly with the usual one-line
:class:`~modelfn_export.errors.ExportError`. Aliases are resolved: ``quantize`` is always ``none``,
``int8`` or ``int8-static`` and ``version`` a string (or ``None``) afterwards.

Example:
    >>> options = ExportOptions("digits", quantize="dynamic", version=3)
    >>> options.quantize, options.version, options.quantizing
    ('int8', '3', True)
    >>> ExportOptions("digits", opset=9)
    Traceback (most recent call last):
    ...
    modelfn_export.errors.ExportError: opset 9 is not supported — use 13–18 (default 17)
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, fields

from .convert import check_opset
from .defaults import DEFAULT_ATOL, DEFAULT_OPSET, DEFAULT_RTOL, DEFAULT_SIGNATURE, DEFAULT_STORE, DEFAULT_THRESHOLD
from .errors import ExportError
from .quantize import check_mode, check_threshold
from .store import validate_name, validate_version

_TOLERANCE_DEFAULTS = {"rtol": DEFAULT_RTOL, "atol": DEFAULT_ATOL}


@dataclass(frozen=True)
class ExportOptions:
    """How to export, and as what.

    Args:
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
        allow_uninformative_parity: write the model even when the TensorFlow outputs barely depend on
            the samples (parity and quantization agreement then prove little); recorded in the card.

    Raises:
        ExportError: the first invalid value, with the fix (exit code 2).
    """

    name: str
    version: str | int | None = None
    opset: int = DEFAULT_OPSET
    quantize: str = "none"
    samples: str | os.PathLike[str] | None = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    out: str | os.PathLike[str] = DEFAULT_STORE
    signature: str = DEFAULT_SIGNATURE
    force_quantized: bool = False
    quantize_threshold: float = DEFAULT_THRESHOLD
    description: str | None = None
    allow_uninformative_parity: bool = False

    def __post_init__(self) -> None:
        validate_name(self.name)
        check_opset(self.opset)
        object.__setattr__(self, "quantize", check_mode(self.quantize))
        if self.quantize == "int8-static" and self.samples is None:
            raise ExportError(
                "--quantize int8-static needs a calibration set",
                "pass --samples with a few hundred representative inputs, or use --quantize int8 (dynamic, no calibration)",
            )
        check_threshold(self.quantize_threshold)
        for label, value in (("rtol", self.rtol), ("atol", self.atol)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ExportError(f"--{label} {value} is invalid", f"use a finite number >= 0 (default {_TOLERANCE_DEFAULTS[label]})")
        if self.version is not None:
            object.__setattr__(self, "version", validate_version(self.version))

    @property
    def quantizing(self) -> bool:
        """Whether an int8 model is wanted."""
        return self.quantize != "none"

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_keywords(cls, caller: str, name: str, keywords: dict[str, object]) -> ExportOptions:
        """Build from a function's ``**keywords``; an unknown one is a ``TypeError`` naming the closest option.

        Example:
            >>> ExportOptions.from_keywords("export_model", "digits", {"quantise": "int8"})
            Traceback (most recent call last):
            ...
            TypeError: export_model() got an unexpected keyword argument 'quantise' (did you mean 'quantize'?)
        """
        known = [n for n in cls.names() if n != "name"]
        for key in keywords:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
                raise TypeError(f"{caller}() got an unexpected keyword argument '{key}'{hint}")
        return cls(name, **keywords)  # type: ignore[arg-type]  # checked against the fields above
