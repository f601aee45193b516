"""The parity gate: TensorFlow and ONNX Runtime must agree on the same samples.

Samples are either the user's (``.npy`` for a single-input model, ``.npz`` keyed by input name) or
generated from the signature: batch sizes 1 and 32, seeded RNG (seed 0); floats uniform in
``[0, 1)``, or in the range a ``Rescaling``/``Normalization`` layer right after the input expects
(``[0, 255]`` for ``Rescaling(1/255)``, ``mean ± 2·std`` for an adapted ``Normalization``); integers uniform in ``[0, input_dim)`` when the input feeds a Keras ``Embedding``
(``[0, 10)`` otherwise, ``[0, 256)`` for uint8); booleans fair coin flips; strings, for an input that goes
straight into a ``TextVectorization``/``StringLookup``/keras-hub tokenizer, text made of its vocabulary
(:func:`generated_text`); dynamic non-batch dimensions get size 8. A model with custom ops (raw text) runs on
ONNX Runtime in a TensorFlow-free child process (:mod:`modelfn_export.isolated`).

An output passes when every element satisfies ``|onnx - tf| <= atol + rtol * |tf|``
(``numpy.allclose`` semantics, NaN equal to NaN). Reported figures per output and overall:

* ``max_abs_diff``: max ``|onnx - tf|``;
* ``max_rel_diff``: max ``|onnx - tf| / max(|tf|, 1e-6)`` (the floor keeps exact zeros from
  producing infinities);
* ``top1_agreement``: for classifier-like outputs (2-D, last dim > 1, floating point) the fraction
  of rows whose argmax matches; ``None`` when no output is classifier-like.

Parity is only evidence when the reference outputs depend on the input. Per output, on the
reference (TensorFlow) outputs over all sample rows:

* ``spread``: the largest change of any output element across rows (``max - min``, elementwise);
* ``distinct_top1``: for classifier-like outputs, how many different argmax classes occur.

An output is **informative** when there are at least 2 rows and its spread exceeds
``INFORMATIVE_FACTOR`` (10) times the parity tolerance ``atol + rtol * max|tf|`` (a model that
returned a constant would otherwise pass too), and, for a classifier-like output, the rows do not all
pick the same class; integer/bool/string outputs must differ between rows. The export refuses
uninformative evidence unless told to accept it (``allow_uninformative_parity``); the card records
``informative`` either way. A random-weight ``keras.applications`` model with its softmax head
outputs exactly ``1/classes`` everywhere: max abs diff 0 and top-1 agreement 1.0 prove nothing.

Example:
    >>> batches = generate_samples(loaded.inputs)                       # doctest: +SKIP
    >>> report = compare(run_reference(loaded, batches), run_onnx("model.onnx", batches),
    ...                  rtol=1e-3, atol=1e-4)                          # doctest: +SKIP
    >>> report.passed, report.max_abs_diff                             # doctest: +SKIP
    (True, 5.96e-08)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .defaults import DEFAULT_ATOL, DEFAULT_RTOL
from .errors import FAILED, ExportError, one_line

Batch = dict[str, np.ndarray]

GENERATED_BATCH_SIZES = (1, 32)
SEED = 0
DYNAMIC_DIM = 8
REL_FLOOR = 1e-6
SAMPLE_CHUNK = 256
"""User samples are run in chunks of at most this many rows."""


# --- samples -------------------------------------------------------------------------------------


def generate_samples(
    inputs: Sequence[Any], batch_sizes: Sequence[int] = GENERATED_BATCH_SIZES, seed: int = SEED
) -> list[Batch]:
    """Seeded random batches matching ``inputs`` (:class:`~modelfn_export.sources.InputInfo`)."""
    rng = np.random.default_rng(seed)
    batches = []
    for size in batch_sizes:
        batch: Batch = {}
        for spec in inputs:
            shape = tuple(
                size if i == 0 else (DYNAMIC_DIM if d is None or d < 0 else int(d))
                for i, d in enumerate(spec.shape)
            )
            dtype = np.dtype(spec.dtype)
            if dtype.kind == "f":
                unit = rng.random(shape)
                if spec.float_range is not None:
                    low, high = (np.asarray(v, np.float64) for v in spec.float_range)
                    unit = low + unit * (high - low)
                batch[spec.name] = unit.astype(dtype)
            elif dtype.kind in "iu":
                low, high = spec.int_range or (0, 10)
                batch[spec.name] = rng.integers(low, high, size=shape).astype(dtype)
            elif dtype.kind == "b":
                batch[spec.name] = rng.random(shape) < 0.5
            elif dtype.kind in "OSU" and getattr(spec, "vocabulary", None):
                batch[spec.name] = generated_text(rng, spec.vocabulary, shape)
            else:
                what = "string" if dtype.kind in "OSU" else str(dtype)
                raise ExportError(
                    f"cannot generate meaningful samples for {what} input '{spec.name}'",
                    "pass --samples with real inputs (.npy or .npz keyed by input name, strings as a str array)",
                )
        batches.append(batch)
    return batches


TEXT_NOISE = ("", "  ", "!", ",", "?", "unseenword", "ÉTÉ")
"""Mixed into generated text: empty and whitespace-only strings, punctuation, out-of-vocabulary words."""


def generated_text(rng: np.random.Generator, vocabulary: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
    """Strings of 0–12 space-separated words drawn from ``vocabulary`` (some capitalised, some with punctuation
    and out-of-vocabulary words), so a raw-text model's tokens and outputs vary from row to row.

    Example:
        >>> generated_text(np.random.default_rng(0), ["fox", "dog"], (2, 1)).shape
        (2, 1)
    """
    words = list(vocabulary)
    texts = []
    for _ in range(int(np.prod(shape))):
        picked = [words[i] if rng.random() < 0.85 else TEXT_NOISE[rng.integers(len(TEXT_NOISE))]
                  for i in rng.integers(len(words), size=rng.integers(0, 13))]
        texts.append(" ".join(w.capitalize() if rng.random() < 0.2 else w for w in picked))
    return np.array(texts, dtype=object).reshape(shape)


def load_samples(path: str | os.PathLike[str], inputs: Sequence[Any]) -> list[Batch]:
    """Read ``.npy`` (single-input models) or ``.npz`` (keyed by input name) samples.

    Arrays are cast to the input dtypes when that is lossless in kind (float->float, int->int,
    int->float); the batch is split into chunks of at most 256 rows.

    Raises:
        ExportError: missing file, wrong format/keys/dtype/shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"samples file '{path}' does not exist", "pass an existing .npy or .npz file to --samples")
    names = [spec.name for spec in inputs]
    try:
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise ExportError(
                    f"samples '{path.name}' hold one array but the model has {len(inputs)} inputs ({', '.join(names)})",
                    "pass an .npz keyed by input name (np.savez('x.npz', **{name: array}))",
                )
            arrays = {names[0]: np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        else:
            raise ExportError(f"samples file '{path.name}' is not .npy or .npz", "save samples with np.save or np.savez")
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"cannot read samples '{path.name}': {type(exc).__name__}: {exc}",
            "save samples with np.save (one input) or np.savez keyed by input name",
        ) from None
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in names]
    if missing or extra:
        raise ExportError(
            f"samples '{path.name}' have keys {sorted(arrays)} but the model's inputs are {names}",
            "key the .npz arrays by exactly the model's input names",
        )
    rows = None
    feeds: Batch = {}
    for spec in inputs:
        array = _cast(arrays[spec.name], spec, path.name)
        if rows is not None and array.shape[0] != rows:
            raise ExportError(
                f"samples '{path.name}' have different batch sizes per input",
                "give every input the same number of rows",
            )
        rows = array.shape[0]
        feeds[spec.name] = array
    if not rows:
        raise ExportError(f"samples '{path.name}' hold no rows", "pass at least one sample")
    return [
        {name: array[start : start + SAMPLE_CHUNK] for name, array in feeds.items()}
        for start in range(0, rows, SAMPLE_CHUNK)
    ]


def _cast(array: np.ndarray, spec: Any, file: str) -> np.ndarray:
    want = np.dtype(spec.dtype)
    shape = list(spec.shape)
    if array.ndim != len(shape):
        hint = " (add a batch dimension: x[None])" if array.ndim == len(shape) - 1 else ""
        raise ExportError(
            f"samples '{file}' input '{spec.name}' has shape {list(array.shape)} but the model expects "
            f"{[-1 if d is None else d for d in shape]}",
            f"pass arrays with the model's shape, batch first{hint}",
        )
    for got, expected in zip(array.shape[1:], shape[1:]):
        if expected is not None and expected >= 0 and got != expected:
            raise ExportError(
                f"samples '{file}' input '{spec.name}' has shape {list(array.shape)} but the model expects "
                f"{[-1 if d is None else d for d in shape]}",
                "pass arrays with the model's shape, batch first",
            )
    if want.kind == "O":
        if array.dtype.kind not in "USO":
            raise ExportError(
                f"samples '{file}' input '{spec.name}' is {array.dtype} but the model expects strings",
                "save the samples as a str array (np.array(['text', ...]))",
            )
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
        strings = np.empty(len(flat), dtype=object)
        strings[:] = flat
        return strings.reshape(array.shape)
    ok = (
        array.dtype == want
        or (want.kind == "f" and array.dtype.kind in "fiub")
        or (want.kind in "iu" and array.dtype.kind in "iub")
        or (want.kind == "b" and array.dtype.kind == "b")
    )
    if not ok:
        raise ExportError(
            f"samples '{file}' input '{spec.name}' is {array.dtype} but the model expects {want}",
            f"save the samples as {want}",
        )
    return np.ascontiguousarray(array.astype(want, copy=False))


# --- running -------------------------------------------------------------------------------------


def custom_library(path: str | os.PathLike[str]) -> str | None:
    """The custom-op library the ONNX model at ``path`` needs (read off its opset imports), or ``None``."""
    stat = os.stat(path)
    return _custom_library(os.path.realpath(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _custom_library(path: str, mtime_ns: int, size: int) -> str | None:
    import onnx

    from modelfn_runtime.custom_ops import DOMAINS

    model = onnx.load(path, load_external_data=False)
    return next((DOMAINS[op.domain] for op in model.opset_import if op.domain in DOMAINS), None)


def onnx_session(path: str | os.PathLike[str]) -> Any:
    """An ONNX Runtime CPU session with ORT's warnings off (and the custom-op library the model needs)."""
    import onnxruntime as ort

    from modelfn_runtime.custom_ops import library_path

    options = ort.SessionOptions()
    options.log_severity_level = 3
    library = custom_library(path)
    if library is not None:
        options.register_custom_ops_library(library_path(library))
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: str | os.PathLike[str], batches: Sequence[Batch]) -> list[Batch]:
    """Run the ONNX model at ``path`` on each batch; outputs by name.

    Raises:
        ExportError: ONNX Runtime cannot load or run the model (exit 1).
    """
    import onnxruntime as ort

    try:
        session = onnx_session(path)
        library = custom_library(path)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"ONNX Runtime {ort.__version__} cannot load the converted model: {type(exc).__name__}: "
            f"{one_line(exc)[:300]}",
            "try another --opset or replace the layer named in the message with standard ops",
            exit_code=FAILED,
        ) from None
    names = [o.name for o in session.get_outputs()]
    expected = {i.name for i in session.get_inputs()}
    for batch in batches:
        if set(batch) != expected:
            raise ExportError(
                f"the ONNX model's inputs are {sorted(expected)} but the samples hold {sorted(batch)}",
                "this is a bug in modelfn export; please report it",
                exit_code=FAILED,
            )
    if library is not None:  # custom ops (raw text): run where TensorFlow's RE2 cannot interfere
        return _run_isolated(path, batches, library)
    results = []
    for batch in batches:
        try:
            results.append(dict(zip(names, session.run(names, batch))))
        except Exception as exc:  # noqa: BLE001
            raise _run_failed(exc) from None
    return results


def _run_failed(exc: BaseException) -> ExportError:
    return ExportError(
        f"ONNX Runtime failed to run the model: {type(exc).__name__}: {one_line(exc)[:300]}",
        "try another --opset or replace the layer named in the message with standard ops",
        exit_code=FAILED,
    )


def _run_isolated(path: str | os.PathLike[str], batches: Sequence[Batch], library: str) -> list[Batch]:
    from .isolated import run_isolated

    try:
        return run_isolated(path, batches, library)
    except Exception as exc:  # noqa: BLE001
        raise _run_failed(exc) from None


def run_reference(loaded: Any, batches: Sequence[Batch]) -> list[Batch]:
    """Run the TensorFlow function of a :class:`~modelfn_export.sources.LoadedSource` on each batch."""
    try:
        return [loaded.run(batch) for batch in batches]
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"TensorFlow failed on the parity samples: {type(exc).__name__}: {one_line(exc)[:300]}",
            "check the samples' values (e.g. integer ids within the Embedding's input_dim) or pass --samples",
        ) from None


# --- comparing -----------------------------------------------------------------------------------


def is_classifier(array: np.ndarray) -> bool:
    """2-D, last dimension > 1, floating point: argmax agreement is meaningful."""
    return array.ndim == 2 and array.shape[-1] > 1 and array.dtype.kind == "f"


INFORMATIVE_FACTOR = 10.0
"""An output is informative when it varies across samples by more than this many parity tolerances."""


@dataclass
class Evidence:
    """How much one reference output depends on the input, over all sample rows."""

    rows: int
    spread: float
    tolerance: float
    distinct_top1: int | None
    informative: bool
    reason: str
    """Why it is not informative (empty when it is)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"spread": self.spread, "informative": self.informative}
        if self.distinct_top1 is not None:
            data["distinct_top1"] = self.distinct_top1
        return data


def evidence(arrays: Sequence[np.ndarray], *, rtol: float, atol: float) -> Evidence:
    """Measure whether one output's values (a list of per-batch arrays, rows first) vary with the input."""
    arrays = [np.asarray(a) for a in arrays if np.asarray(a).ndim > 0 and np.asarray(a).shape[0] > 0]
    rows = sum(int(a.shape[0]) for a in arrays)
    if rows < 2:
        return Evidence(rows, 0.0, 0.0, None, False, "a single sample row cannot show that the output depends on the input")
    same_shape = len({a.shape[1:] for a in arrays}) == 1
    groups = [np.concatenate(arrays)] if same_shape else arrays
    if groups[0].dtype.kind not in "fc":
        varies = any(bool((g != g[:1]).any()) for g in groups if g.shape[0] > 1)
        reason = "" if varies else f"it is identical for all {rows} sample rows"
        return Evidence(rows, float(varies), 0.0, None, varies, reason)
    spread, scale, top1 = 0.0, 0.0, set()
    for g in groups:
        values = np.nan_to_num(g.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if g.shape[0] > 1:
            spread = max(spread, float((values.max(axis=0) - values.min(axis=0)).max(initial=0.0)))
        scale = max(scale, float(np.abs(values).max(initial=0.0)))
        if is_classifier(g):
            top1.update(int(i) for i in g.argmax(axis=-1))
    tolerance = atol + rtol * scale
    distinct = len(top1) if top1 else None
    if spread <= INFORMATIVE_FACTOR * tolerance:
        reason = (
            f"it varies by at most {spread:.3g} across {rows} sample rows, not more than "
            f"{INFORMATIVE_FACTOR:g}× the parity tolerance {tolerance:.3g}"
        )
    elif distinct == 1:
        reason = f"every one of the {rows} sample rows gets the same top-1 class ({next(iter(top1))})"
    else:
        reason = ""
    return Evidence(rows, spread, tolerance, distinct, not reason, reason)


def uninformative_summary(found: dict[str, Evidence]) -> str:
    """One line naming the uninformative outputs and why (empty when all are informative)."""
    bad = [f"output '{name}': {e.reason}" for name, e in found.items() if not e.informative]
    return "; ".join(bad)


@dataclass
class OutputParity:
    name: str
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    top1_agreement: float | None = None
    passed: bool = True
    evidence: Evidence | None = None
    _agree: int = field(default=0, repr=False)
    _rows: int = field(default=0, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff}
        if self.top1_agreement is not None:
            data["top1_agreement"] = self.top1_agreement
        if self.evidence is not None:
            data.update(self.evidence.to_dict())
        data["passed"] = self.passed
        return data


@dataclass
class ParityReport:
    """Agreement of a candidate (ONNX) with the reference (TensorFlow) over all batches."""

    outputs: dict[str, OutputParity]
    rtol: float
    atol: float
    samples: str
    batch_sizes: list[int]
    rows: int

    @property
    def max_abs_diff(self) -> float:
        return max((o.max_abs_diff for o in self.outputs.values()), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((o.max_rel_diff for o in self.outputs.values()), default=0.0)

    @property
    def top1_agreement(self) -> float | None:
        values = [o.top1_agreement for o in self.outputs.values() if o.top1_agreement is not None]
        return min(values) if values else None

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs.values())

    @property
    def informative(self) -> bool:
        """Every output's reference values depend on the input (see the module docstring)."""
        return all(o.evidence is not None and o.evidence.informative for o in self.outputs.values())

    def uninformative(self) -> str:
        """One line naming the outputs whose evidence is not informative (empty when all are)."""
        return uninformative_summary({n: o.evidence for n, o in self.outputs.items() if o.evidence is not None})

    def failure(self) -> str:
        """One line naming the worst failing output (empty when passed)."""
        failing = [o for o in self.outputs.values() if not o.passed]
        if not failing:
            return ""
        worst = max(failing, key=lambda o: o.max_abs_diff)
        return (
            f"output '{worst.name}' differs by up to {worst.max_abs_diff:.3g} "
            f"(max rel {worst.max_rel_diff:.3g}) beyond rtol={self.rtol:g} atol={self.atol:g}"
        )

    def to_card(self) -> dict[str, Any]:
        """The card's ``parity`` object."""
        return {
            "samples": self.samples,
            "batch_sizes": self.batch_sizes,
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "rtol": self.rtol,
            "atol": self.atol,
            "top1_agreement": self.top1_agreement,
            "per_output": {name: o.to_dict() for name, o in self.outputs.items()},
            "passed": self.passed,
            "informative": self.informative,
        }


def compare(
    reference: Sequence[Batch],
    candidate: Sequence[Batch],
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    samples: str = "generated",
) -> ParityReport:
    """Compare candidate outputs with reference outputs batch by batch.

    Raises:
        ExportError: an output is missing or has a different shape (exit 1).
    """
    names = list(reference[0]) if reference else []
    outputs = {name: OutputParity(name) for name in names}
    batch_sizes: list[int] = []
    for ref_batch, cand_batch in zip(reference, candidate):
        rows = None
        for name in names:
            ref, cand = ref_batch[name], cand_batch.get(name)
            if cand is None:
                raise ExportError(
                    f"the ONNX model has no output '{name}' (it has {sorted(cand_batch)})",
                    "this is a bug in modelfn export; please report it",
                    exit_code=FAILED,
                )
            if ref.shape != cand.shape:
                raise ExportError(
                    f"output '{name}' has shape {list(cand.shape)} in ONNX but {list(ref.shape)} in TensorFlow",
                    "replace the layer producing it with standard ops or try another --opset",
                    exit_code=FAILED,
                )
            rows = rows or (ref.shape[0] if ref.ndim else 1)
            _accumulate(outputs[name], ref, cand, rtol, atol)
        batch_sizes.append(int(rows or 0))
    for name, out in outputs.items():
        if out._rows:
            out.top1_agreement = out._agree / out._rows
        out.evidence = evidence([batch[name] for batch in reference], rtol=rtol, atol=atol)
    return ParityReport(
        outputs=outputs,
        rtol=float(rtol),
        atol=float(atol),
        samples=samples,
        batch_sizes=sorted(set(batch_sizes), key=batch_sizes.index),
        rows=int(sum(batch_sizes)),
    )


def diffs(ref: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise ``|cand - ref|`` and ``|cand - ref| / max(|ref|, 1e-6)``, NaN==NaN counting as 0."""
    if ref.dtype.kind in "OSUb" or cand.dtype.kind in "OSUb":
        absdiff = (ref != cand).astype(np.float64)
        return absdiff, absdiff
    a = ref.astype(np.float64)
    b = cand.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        absdiff = np.abs(b - a)
    both_nan = np.isnan(a) & np.isnan(b)
    absdiff = np.where(both_nan, 0.0, np.where(np.isnan(absdiff), np.inf, absdiff))
    reldiff = absdiff / np.maximum(np.abs(np.nan_to_num(a)), REL_FLOOR)
    return absdiff, reldiff


def _accumulate(out: OutputParity, ref: np.ndarray, cand: np.ndarray, rtol: float, atol: float) -> None:
    if ref.size == 0:
        return
    absdiff, reldiff = diffs(ref, cand)
    out.max_abs_diff = max(out.max_abs_diff, float(absdiff.max()))
    out.max_rel_diff = max(out.max_rel_diff, float(reldiff.max()))
    if ref.dtype.kind in "OSUb":
        ok = bool((absdiff == 0).all())
    else:
        ok = bool((absdiff <= atol + rtol * np.abs(np.nan_to_num(ref.astype(np.float64)))).all())
    out.passed = out.passed and ok
    if is_classifier(ref):
        out._agree += int((ref.argmax(axis=-1) == cand.argmax(axis=-1)).sum())
        out._rows += int(ref.shape[0])
