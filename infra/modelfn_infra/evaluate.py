"""``modelfn evaluate NAME --data FILE.npz``: how good is the served model, measured through its endpoint.

A labelled test set travels through the real endpoint (the local API by default, or a deployed URL) with
tritonclient's binary tensors; the answers give accuracy, per-class precision / recall / F1 and the
confusion matrix (scikit-learn computes them), request latency percentiles, and, when the model card's
TensorFlow source can still be loaded, how often the served predictions agree with TensorFlow's.
``--plot`` draws the confusion matrix as a PNG (matplotlib).

The ``.npz`` holds the labels (``--labels KEY``; default ``y``, ``labels`` or ``label``) and the inputs,
keyed by the model's input names (a single-input model may use any other key, e.g. ``x``).

Example:
    >>> result = evaluate("digits", {"pixels": x_test}, y_test, endpoint="http://127.0.0.1:3000")  # doctest: +SKIP
    >>> print(result.summary())                                                                 # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

DEFAULT_ENDPOINT = "http://127.0.0.1:3000"
LABEL_KEYS = ("y", "labels", "label")


class EvaluationError(ValueError):
    """The evaluation cannot run; the message names what to fix."""


@dataclass
class Evaluation:
    model: str
    version: str
    endpoint: str
    labels: np.ndarray
    predictions: np.ndarray
    classes: list[int]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    latency_ms: np.ndarray
    batch_size: int
    tf_agreement: float | None = None
    tf_note: str = ""

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())

    def summary(self) -> str:
        """A plain-text report: headline numbers, per-class table, confusion matrix."""
        p50, p90, p99 = np.percentile(self.latency_ms, [50, 90, 99])
        lines = [
            f"{self.model} version {self.version} at {self.endpoint}: {len(self.labels)} examples",
            f"  accuracy          {self.accuracy:.4f}",
            f"  macro F1          {float(self.f1.mean()):.4f}",
            "  TF agreement      " + (f"{self.tf_agreement:.4f} (served predictions == TensorFlow's; {self.tf_note})"
                                      if self.tf_agreement is not None else f"n/a ({self.tf_note})"),
            f"  latency           p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms "
            f"({len(self.latency_ms)} requests of up to {self.batch_size} examples)",
            "",
            "  class  precision  recall     F1  support",
        ]
        for k, cls in enumerate(self.classes):
            lines.append(f"  {cls:>5}  {self.precision[k]:9.3f}  {self.recall[k]:6.3f}  {self.f1[k]:5.3f}  {int(self.support[k]):7d}")
        width = max(3, len(str(int(self.confusion.max(initial=0)))))
        lines += ["", "  confusion matrix (rows: true class, columns: predicted)",
                  "  " + " " * 6 + " ".join(f"{cls:>{width}}" for cls in self.classes)]
        for cls, row in zip(self.classes, self.confusion):
            lines.append(f"  {cls:>5} " + " ".join(f"{int(v):>{width}}" for v in row))
        return "\n".join(lines)


def evaluate(
    name: str,
    inputs: dict[str, np.ndarray] | np.ndarray,
    labels: np.ndarray,
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    batch_size: int = 16,
    output: str | None = None,
    store: str | Path = "models",
    compare_tf: bool = True,
    api_key: str | None = None,
) -> Evaluation:
    """Send ``inputs`` through ``endpoint`` in batches and score the predictions against ``labels``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    client = _client(endpoint)
    headers = {"x-api-key": api_key} if api_key else None  # model routes need a tenant's key (docs/billing.md)
    metadata = _metadata(client, name, endpoint, headers)
    feeds = _feeds(metadata, inputs)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    count = len(next(iter(feeds.values())))
    if count != len(labels):
        raise EvaluationError(f"the inputs hold {count} examples but there are {len(labels)} labels; they must match")
    output = output or metadata["outputs"][0]["name"]
    scores, latency = _infer_all(client, name, metadata, feeds, output, batch_size, headers)
    predictions = _classes(scores)
    classes = sorted(set(labels.tolist()) | set(predictions.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=classes, zero_division=0)
    result = Evaluation(
        model=name, version=str(metadata.get("versions", ["?"])[0]), endpoint=endpoint, labels=labels, predictions=predictions,
        classes=classes, precision=precision, recall=recall, f1=f1, support=support,
        confusion=confusion_matrix(labels, predictions, labels=classes), latency_ms=latency, batch_size=batch_size,
    )
    if compare_tf:
        result.tf_agreement, result.tf_note = _tf_agreement(Path(store) / name / result.version, feeds, output, predictions)
    else:
        result.tf_note = "not asked for"
    return result


def plot_confusion(result: Evaluation, path: str | Path) -> Path:
    """Write the confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.0 + 0.55 * len(result.classes), 0.8 + 0.55 * len(result.classes)), dpi=120)
    axes.imshow(result.confusion, cmap="Blues")
    axes.set_xticks(range(len(result.classes)), [str(c) for c in result.classes])
    axes.set_yticks(range(len(result.classes)), [str(c) for c in result.classes])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{result.model} v{result.version}: accuracy {result.accuracy:.3f}")
    threshold = result.confusion.max(initial=0) / 2
    for (row, column), value in np.ndenumerate(result.confusion):
        axes.text(column, row, str(int(value)), ha="center", va="center", fontsize=8,
                  color="white" if value > threshold else "black")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def load_npz(path: str | Path, labels_key: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``(inputs by key, labels)`` from an ``.npz``; EvaluationError naming the keys when labels are missing."""
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as error:
        raise EvaluationError(f"cannot read {path} as .npz ({error}); save it with numpy.savez(path, x=..., y=...)") from None
    key = labels_key or next((k for k in LABEL_KEYS if k in data), None)
    if key is None or key not in data:
        raise EvaluationError(f"{path} has no labels {'key ' + repr(labels_key) if labels_key else 'under y, labels or label'}; "
                              f"its keys are {sorted(data)}: pass --labels KEY")
    labels = data.pop(key)
    return data, labels


def add_evaluate_parser(commands: Any) -> argparse.ArgumentParser:
    p = commands.add_parser("evaluate", help="measure a served model on a labelled test set: accuracy, precision, recall, F1, latency")
    p.add_argument("name", metavar="NAME", help="model name")
    p.add_argument("--data", required=True, metavar="FILE.npz", help="inputs keyed by input name (or one array) and labels")
    p.add_argument("--labels", default=None, metavar="KEY", help="the labels' key in the .npz (default: y, labels or label)")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, metavar="URL",
                   help=f"the API's base URL (default {DEFAULT_ENDPOINT}, `modelfn local start-api`), e.g. https://ID.execute-api.REGION.amazonaws.com/Prod")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the confusion matrix to this PNG")
    p.add_argument("--api-key", default=os.environ.get("MODELFN_API_KEY"), metavar="KEY",
                   help="a tenant's API key, sent as x-api-key (default: $MODELFN_API_KEY)")
    p.add_argument("--batch-size", type=int, default=16, help="examples per request (default 16)")
    p.add_argument("--output", default=None, help="the output holding class scores (default: the model's first output)")
    p.add_argument("--store", default="models", metavar="DIR", help="local model store, for the TensorFlow comparison (default models)")
    p.add_argument("--no-tf", action="store_true", help="skip the comparison with the TensorFlow source")
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        if args.batch_size < 1:
            raise EvaluationError("--batch-size must be at least 1")
        inputs, labels = load_npz(args.data, args.labels)
        result = evaluate(args.name, inputs, labels, args.endpoint, batch_size=args.batch_size, output=args.output,
                          api_key=args.api_key,
                          store=args.store, compare_tf=not args.no_tf)
    except EvaluationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.plot:
        print(f"\nconfusion matrix written to {plot_confusion(result, args.plot)}")
    return 0


def _client(endpoint: str):
    import tritonclient.http as triton

    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise EvaluationError(f"endpoint {endpoint!r} must be an http(s) URL such as {DEFAULT_ENDPOINT}")
    return triton.InferenceServerClient(parsed.netloc + parsed.path.rstrip("/"), ssl=parsed.scheme == "https",
                                        connection_timeout=30, network_timeout=60)


def _metadata(client, name: str, endpoint: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from tritonclient.utils import InferenceServerException

    try:
        return client.get_model_metadata(name, headers=headers)
    except InferenceServerException as error:
        hint = "pass a tenant's key with --api-key" if "api key" in str(error.message()).lower() else "check NAME and --endpoint"
        raise EvaluationError(f"{endpoint} does not serve {name!r} ({error.message()}); {hint}") from None
    except OSError as error:
        raise EvaluationError(
            f"cannot reach {endpoint} ({error}); start the API with `modelfn local start-api` or pass --endpoint URL"
        ) from None


def _feeds(metadata: dict[str, Any], inputs: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    from tritonclient.utils import triton_to_np_dtype

    specs = metadata["inputs"]
    if isinstance(inputs, np.ndarray):
        inputs = {specs[0]["name"]: inputs}
    if len(specs) == 1 and specs[0]["name"] not in inputs and len(inputs) == 1:
        inputs = {specs[0]["name"]: next(iter(inputs.values()))}
    missing = [spec["name"] for spec in specs if spec["name"] not in inputs]
    if missing:
        raise EvaluationError(f"the data has no {missing} (keys: {sorted(inputs)}); key each input by the model's input name")
    return {spec["name"]: np.asarray(inputs[spec["name"]]).astype(triton_to_np_dtype(spec["datatype"])) for spec in specs}


def _infer_all(client, name, metadata, feeds, output, batch_size, headers=None) -> tuple[np.ndarray, np.ndarray]:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    datatypes = {spec["name"]: spec["datatype"] for spec in metadata["inputs"]}
    count = len(next(iter(feeds.values())))
    chunks, latency = [], []
    for start in range(0, count, batch_size):
        tensors = []
        for input_name, values in feeds.items():
            batch = values[start : start + batch_size]
            tensor = triton.InferInput(input_name, list(batch.shape), datatypes[input_name])
            tensor.set_data_from_numpy(batch, binary_data=True)
            tensors.append(tensor)
        started = time.perf_counter()
        try:
            result = client.infer(name, tensors, outputs=[triton.InferRequestedOutput(output, binary_data=True)], headers=headers)
        except InferenceServerException as error:
            raise EvaluationError(f"the endpoint refused examples {start}..{start + batch_size - 1}: {error.message()}") from None
        latency.append((time.perf_counter() - started) * 1000)
        chunks.append(result.as_numpy(output))
    return np.concatenate(chunks), np.array(latency)


def _classes(scores: np.ndarray) -> np.ndarray:
    """Class indices: argmax over the last axis, or a 0.5 threshold for a single score per example."""
    scores = scores.reshape(len(scores), -1)
    if scores.shape[1] == 1:
        return (scores[:, 0] > 0.5).astype(np.int64)
    return scores.argmax(axis=1).astype(np.int64)


def _tf_agreement(model_dir: Path, feeds, output, predictions) -> tuple[float | None, str]:
    from modelfn_runtime.modelcard import CARD_FILE, ModelCard

    if not (model_dir / CARD_FILE).is_file():
        return None, f"no model card at {model_dir} to find the TensorFlow source"
    source = ModelCard.read(model_dir / CARD_FILE).source or {}
    location = source.get("location")
    if not location:
        return None, "the card records no source"
    try:
        from modelfn_export.sources import load_source

        loaded = load_source(location, source.get("signature") or "serving_default")
        reference = loaded.run(feeds)
    except Exception as error:  # noqa: BLE001 - the comparison is optional; say why it is missing
        return None, f"TensorFlow source {location!r} not loadable: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    scores = reference.get(output)
    if scores is None:
        return None, f"the TensorFlow source has no output {output!r}"
    how = "re-ran" if source.get("kind") == "python" else "loaded"  # a python source builds (maybe trains) the model again
    return float((_classes(np.asarray(scores)) == predictions).mean()), f"{how} {location}"
