"""A tiny two-input, two-output ONNX model with a card, built with onnx.helper (no TensorFlow).

Handler tests use it so they run in milliseconds; the end-to-end tests use a real exported Keras model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelfn_runtime.modelcard import Artifact, ModelCard, TensorSpec

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def reference(features: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    logits = features @ WEIGHTS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return {"probs": exp / exp.sum(axis=1, keepdims=True), "total": ids.sum(axis=1, keepdims=True).astype(np.float32)}


def write_toy_model(directory: Path, name: str = "toy", version: str = "1") -> Path:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
            helper.make_node("ReduceSum", ["ids", "axes"], ["sum"], keepdims=1),
            helper.make_node("Cast", ["sum"], ["total"], to=TensorProto.FLOAT),
        ],
        "toy",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 1]),
        ],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    inputs = [TensorSpec("features", "FP32", [-1, 4]), TensorSpec("ids", "INT64", [-1, 3])]
    outputs = [TensorSpec("probs", "FP32", [-1, 3]), TensorSpec("total", "FP32", [-1, 1])]
    return _write(directory, graph, name, version, inputs, outputs)


def write_linear_model(directory: Path, name: str = "linear", version: str = "1") -> Path:
    """One input ``x`` (FP32, [-1, 4]) and one output ``y = x @ WEIGHTS`` (FP32, [-1, 3]): what .npy inputs need."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(WEIGHTS, "W")],
    )
    return _write(directory, graph, name, version, [TensorSpec("x", "FP32", [-1, 4])], [TensorSpec("y", "FP32", [-1, 3])])


def write_digits_like_model(directory: Path, name: str = "digits", version: str = "1") -> Path:
    """The digits demo's signature (``pixels`` FP32 [-1, 64] -> ``probs`` FP32 [-1, 10]) as one softmax layer whose
    scores follow the input, for tools that expect the demo model (benchmarks) without training it."""
    weights = np.random.default_rng(7).normal(size=(64, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["pixels", "W"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
        "digits_like",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(weights, "W")],
    )
    return _write(directory, graph, name, version, [TensorSpec("pixels", "FP32", [-1, 64])], [TensorSpec("probs", "FP32", [-1, 10])])


def _write(directory: Path, graph, name: str, version: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
           *, custom_ops: dict | None = None) -> Path:
    extra = [helper.make_opsetid(custom_ops["domain"], 1)] if custom_ops else []
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), *extra])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    directory.mkdir(parents=True, exist_ok=True)
    raw = model.SerializeToString()
    (directory / "model.onnx").write_bytes(raw)
    card = ModelCard(
        name=name,
        version=version,
        created="2026-11-28T00:00:00Z",
        artifact=Artifact("model.onnx", hashlib.sha256(raw).hexdigest(), len(raw)),
        opset=17,
        producers={"tensorflow": "-", "keras": "-", "tf2onnx": "-", "onnx": onnx.__version__, "onnxruntime": "-"},
        inputs=inputs,
        outputs=outputs,
        parity={"samples": "generated", "batch_sizes": [1], "max_abs_diff": 0.0, "max_rel_diff": 0.0,
                "rtol": 0.0, "atol": 0.0, "top1_agreement": 1.0, "passed": True},
        source={"kind": "python", "location": "tests/runtime/toy_model.py", "description": "hand-built ONNX graph"},
        quantization={"mode": "none"},
        custom_ops=custom_ops,
    )
    card.write(directory / "modelcard.json")
    return directory
