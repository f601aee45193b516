"""Optional int8 quantization and its agreement check against the fp32 model.

Two modes, both from ``onnxruntime.quantization`` after ``quant_pre_process`` (symbolic shape
inference first, retried with ``skip_symbolic_shape=True`` if that fails):

* ``int8`` (alias ``dynamic``): ``quantize_dynamic`` with int8 weights (``QuantType.QInt8``);
  activations are quantized to uint8 at run time by ``DynamicQuantizeLinear``. No calibration.
* ``int8-static`` (alias ``static``): ``quantize_static`` in QDQ format (QuantizeLinear /
  DequantizeLinear pairs around int8 weights and activations), per-channel weights, MinMax
  calibration on the ``--samples`` rows (required: activation ranges from generated noise would
  be wrong for real data).

Agreement with the fp32 model is measured on the parity samples, per output:

* classifier-like outputs (2-D, last dim > 1, floating point): top-1 (argmax) agreement;
* other floating-point outputs: ``1 - relative_error`` with
  ``relative_error = max|q - fp32| / max(max|fp32|, 1e-6)`` (the error relative to the output's
  range on the samples), so the default threshold 0.98 allows an error of 2 % of that range;
* integer/bool outputs: the fraction of elements that are equal.

The quantized model is accepted when the smallest per-output score is >= ``threshold`` (default
0.98), or when forced (recorded as ``forced: true``). Non-finite quantized outputs are always refused.
Generated samples are only 33 rows (1 flip of top-1 = 0.97), so pass representative ``--samples``
when quantizing. Like parity, the agreement is only evidence when the fp32 outputs depend on the
input; the card records ``informative`` (see :mod:`modelfn_export.parity`).

The card also gets size and speed figures: ``fp32_bytes``/``bytes`` and the median latency of
single-row and full-batch runs of both models on ONNX Runtime's CPU provider (:func:`latency`), the
speedup of int8 over fp32 (:func:`speedups`), this CPU's int8 instructions (:mod:`modelfn_export.cpu`) and
``warnings`` when int8 is slower than fp32 or was kept below the agreement threshold.

Example:
    >>> quantize_dynamic_int8("fp32.onnx", "int8.onnx", "work/")   # doctest: +SKIP
    >>> report = measure(fp32_outputs, int8_outputs)                # doctest: +SKIP
    >>> report.agreement >= DEFAULT_THRESHOLD                       # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .defaults import DEFAULT_THRESHOLD, QUANTIZE_MODES
from .errors import FAILED, ExportError, one_line
from .parity import REL_FLOOR, Batch, is_classifier

MODES = QUANTIZE_MODES
ALIASES = {"dynamic": "int8", "static": "int8-static"}
"""Accepted alternative names -> the canonical mode recorded in the card."""
WEIGHT_TYPE = "QInt8"
LATENCY_RUNS = 5
LATENCY_ROUNDS = 3
CRITERION = (
    "min over outputs of: top-1 agreement (classifier outputs), 1 - max|q-fp32|/max|fp32| "
    "(other float outputs), fraction equal (integer/bool outputs)"
)


def check_mode(mode: str) -> str:
    """The canonical mode (``none``, ``int8``, ``int8-static``) for ``mode`` or one of its aliases.

    Raises:
        ExportError: an unknown mode (exit 2).
    """
    if mode not in MODES:
        raise ExportError(
            f"quantization mode '{mode}' is not supported",
            "use --quantize none, int8 (dynamic int8 weights) or int8-static (QDQ, calibrated on --samples)",
        )
    return ALIASES.get(mode, mode)


def check_threshold(threshold: float) -> None:
    """Raise :class:`ExportError` unless ``0 <= threshold <= 1``."""
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise ExportError(
            f"quantization threshold {threshold} is out of range",
            f"use a value in 0–1 (default {DEFAULT_THRESHOLD})",
        )


def quantize_dynamic_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], work_dir: str | os.PathLike[str]) -> None:
    """Pre-process and dynamically quantize ``src`` (fp32 ONNX) into ``dst`` (int8 weights).

    Raises:
        ExportError: ONNX Runtime's quantizer failed (exit 1).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def run(pre: str, out: str) -> None:
        quantize_dynamic(pre, out, weight_type=getattr(QuantType, WEIGHT_TYPE))

    _quantize(src, dst, work_dir, "preprocessed.onnx", run, "dynamic", "export with --quantize none")


def _quantize(src: str | os.PathLike[str], dst: str | os.PathLike[str], work_dir: str | os.PathLike[str], pre_name: str,
              run: Callable[[str, str], None], label: str, fix: str) -> None:
    """ONNX Runtime's pre-processing of ``src`` (symbolic shape inference, retried without it), then ``run(pre, dst)``
    in the staging directory with the quantizer's chatter silenced; any failure is an ExportError naming ``fix``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    pre = Path(work_dir).resolve() / pre_name
    try:
        with _Quiet(work_dir):
            try:
                quant_pre_process(os.fspath(src), os.fspath(pre))
            except Exception:  # noqa: BLE001 - symbolic shape inference (sympy) is the fragile part
                quant_pre_process(os.fspath(src), os.fspath(pre), skip_symbolic_shape=True)
            run(os.fspath(pre), os.fspath(dst))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"{label} int8 quantization failed: {type(exc).__name__}: {one_line(exc)[:300]}", fix, exit_code=FAILED
        ) from None


class _Calibration:
    """``onnxruntime.quantization.CalibrationDataReader`` over the parity sample batches."""

    def __init__(self, batches: Sequence[Batch]) -> None:
        self._rows = iter([{k: v[i : i + 1] for k, v in batch.items()} for batch in batches for i in range(_rows(batch))])

    def get_next(self) -> Batch | None:
        return next(self._rows, None)


def _rows(batch: Batch) -> int:
    first = next(iter(batch.values()))
    return int(first.shape[0]) if first.ndim else 1


def quantize_static_int8(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], work_dir: str | os.PathLike[str], batches: Sequence[Batch]
) -> None:
    """Pre-process and statically quantize ``src`` into ``dst``: QDQ, int8 per-channel weights,
    int8 activations with MinMax ranges calibrated row by row on ``batches``.

    Raises:
        ExportError: ONNX Runtime's quantizer failed (exit 1).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    def run(pre: str, out: str) -> None:
        quantize_static(
            pre,
            out,
            _Calibration(batches),  # type: ignore[arg-type]  # duck-typed CalibrationDataReader
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )

    _quantize(src, dst, work_dir, "preprocessed-static.onnx", run, "static",
              "export with --quantize int8 (dynamic) or --quantize none")


def latency(paths: dict[str, str | os.PathLike[str]], batches: Sequence[Batch], runs: int = LATENCY_RUNS,
            rounds: int = LATENCY_ROUNDS) -> dict[str, dict[str, float]]:
    """Median wall-clock milliseconds of each model on one row and on the largest batch, ``{label: {"batch_1_ms": ..}}``.

    The models run as a deployed function runs them (:func:`modelfn_runtime.providers.session_options`: all
    graph optimizations, one intra-op thread: Lambda's 1,769 MB vCPU) and interleaved (``rounds`` rounds of
    ``runs`` runs each after a warm-up), so load on a shared machine falls on both alike. Indicative (one
    machine); the benchmarks measure properly.
    """
    import time

    import onnxruntime as ort

    from modelfn_runtime import custom_ops, providers

    from .parity import custom_library

    sessions = {}
    for label, path in paths.items():
        options = providers.session_options(1)
        library = custom_library(path)
        if library is not None:
            options.register_custom_ops_library(custom_ops.library_path(library))
        sessions[label] = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    largest = max(batches, key=_rows)
    figures: dict[str, dict[str, float]] = {label: {} for label in paths}
    for key, feeds in (("batch_1_ms", {k: v[:1] for k, v in largest.items()}), (f"batch_{_rows(largest)}_ms", largest)):
        times: dict[str, list[float]] = {label: [] for label in paths}
        for session in sessions.values():
            session.run(None, feeds)
        for _ in range(rounds):
            for label, session in sessions.items():
                for _ in range(runs):
                    started = time.perf_counter()
                    session.run(None, feeds)
                    times[label].append((time.perf_counter() - started) * 1000)
        for label in paths:
            figures[label][key] = float(np.median(times[label]))
    return figures


def speedups(fp32: dict[str, float], int8: dict[str, float]) -> dict[str, float]:
    """``fp32 ms / int8 ms`` per figure (> 1: int8 is faster), ``{"batch_1": 1.8, "batch_32": 2.1}``."""
    return {key.removesuffix("_ms"): round(fp32[key] / int8[key], 3) for key in fp32 if key in int8 and int8[key] > 0}


class _Quiet:
    """Silence the quantizer's root-logger warnings while it runs, in ``work_dir``.

    When symbolic shape inference gives up, ONNX Runtime saves ``sym_shape_infer_temp.onnx`` and a
    uuid-named ``.data`` file into the *current directory*; running in the (staging) work directory
    keeps the user's directory clean. Paths passed to the quantizer must be absolute. (``chdir`` is
    process-wide: an export is a single-threaded job.)
    """

    def __init__(self, work_dir: str | os.PathLike[str]) -> None:
        self._work_dir = Path(work_dir)

    def __enter__(self) -> None:
        self._level = logging.getLogger().level
        self._cwd = os.getcwd()
        logging.getLogger().setLevel(logging.ERROR)
        os.chdir(self._work_dir)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self._cwd)
        logging.getLogger().setLevel(self._level)


@dataclass
class QuantReport:
    """Agreement of the quantized model with the fp32 model."""

    scores: dict[str, float]
    top1_agreement: float | None
    max_abs_diff: float
    relative_error: float | None
    rows: int
    finite: bool

    @property
    def agreement(self) -> float:
        return min(self.scores.values(), default=1.0)

    def worst(self) -> str:
        return min(self.scores, key=self.scores.__getitem__) if self.scores else ""


def measure(fp32: Sequence[Batch], quantized: Sequence[Batch]) -> QuantReport:
    """Score quantized outputs against fp32 outputs (see the module docstring for the criteria)."""
    names = list(fp32[0]) if fp32 else []
    scores: dict[str, float] = {}
    top1: list[float] = []
    rel: list[float] = []
    max_abs = 0.0
    finite = True
    rows = 0
    for name in names:
        refs = [batch[name] for batch in fp32]
        cands = [batch[name] for batch in quantized]
        if any(r.shape != c.shape for r, c in zip(refs, cands)):
            finite = False
            scores[name] = 0.0
            continue
        if refs[0].dtype.kind == "f":
            diff = max((float(np.max(np.abs(c.astype(np.float64) - r.astype(np.float64)), initial=0.0))
                        for r, c in zip(refs, cands)), default=0.0)
            if not np.isfinite(diff) or any(not np.isfinite(c).all() for c in cands):
                finite = False
                diff = float("inf")
            max_abs = max(max_abs, diff)
            if all(is_classifier(r) for r in refs):
                agree = sum(int((r.argmax(-1) == c.argmax(-1)).sum()) for r, c in zip(refs, cands))
                total = sum(r.shape[0] for r in refs)
                scores[name] = agree / total if total else 1.0
                top1.append(scores[name])
            else:
                scale = max((float(np.max(np.abs(r), initial=0.0)) for r in refs), default=0.0)
                error = diff / max(scale, REL_FLOOR) if np.isfinite(diff) else float("inf")
                rel.append(error)
                scores[name] = max(0.0, 1.0 - error)
        else:
            equal = sum(int((r == c).sum()) for r, c in zip(refs, cands))
            total = sum(r.size for r in refs)
            scores[name] = equal / total if total else 1.0
        rows = max(rows, sum(r.shape[0] if r.ndim else 1 for r in refs))
    return QuantReport(
        scores=scores,
        top1_agreement=min(top1) if top1 else None,
        max_abs_diff=max_abs,
        relative_error=max(rel) if rel else None,
        rows=rows,
        finite=finite,
    )


def card_entry(
    report: QuantReport,
    *,
    mode: str = "int8",
    threshold: float,
    forced: bool,
    fp32_bytes: int,
    size: int,
    informative: bool | None = None,
    latency_ms: dict[str, dict[str, float]] | None = None,
    calibration_rows: int | None = None,
    speed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card's ``quantization`` object for an int8 artifact (``mode`` ``int8`` or ``int8-static``)."""
    entry: dict[str, Any] = {
        "mode": mode,
        "method": "static" if mode == "int8-static" else "dynamic",
        "format": "QDQ" if mode == "int8-static" else "QOperator",
        "weight_type": WEIGHT_TYPE,
        "top1_agreement_with_fp32": report.top1_agreement,
        "max_abs_diff_vs_fp32": report.max_abs_diff,
        "relative_error_vs_fp32": report.relative_error,
        "agreement": report.agreement,
        "per_output_agreement": report.scores,
        "criterion": CRITERION,
        "samples": report.rows,
        "threshold": float(threshold),
        "forced": bool(forced),
        "fp32_bytes": int(fp32_bytes),
        "bytes": int(size),
        "size_ratio": round(int(size) / max(int(fp32_bytes), 1), 4),
    }
    if mode == "int8-static":
        entry["activation_type"] = "QInt8"
        entry["per_channel"] = True
        entry["calibration"] = {"method": "MinMax", "rows": int(calibration_rows or 0)}
    if informative is not None:
        entry["informative"] = bool(informative)
    if latency_ms is not None:
        entry["latency_ms"] = latency_ms
    if speed is not None:
        entry.update(speed)
    return entry
