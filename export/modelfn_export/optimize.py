"""Offline graph optimization with ONNX Runtime.

The model is optimized once at export time by loading it with
``SessionOptions.optimized_model_filepath`` set, at ``ORT_ENABLE_BASIC``.

Why *basic*: basic optimizations (constant folding, redundant node elimination, semantics-preserving
fusions such as Conv+BatchNorm) rewrite the graph using standard ONNX ops only, so the saved model is
still a plain ONNX model that any ONNX Runtime build or execution provider (and other ONNX runtimes)
can load. *Extended* and *all* fuse into ORT contrib ops (``com.microsoft`` domain: FusedConv,
FusedMatMul, Gelu, ...) and layout-specific (NCHWc) nodes chosen for the execution provider and CPU
of the machine that ran the export; ONNX Runtime documents that such saved models should only be
run in the same environment. The serving function applies the higher levels at session creation on
its own hardware anyway, so nothing is lost by saving the portable form.

Unused opset imports that ORT adds when saving (``com.microsoft``, ``ai.onnx.training``, ...) are
removed so the artifact declares only the domains it uses.

Example:
    >>> optimize("raw.onnx", "optimized.onnx")   # doctest: +SKIP
    'basic'
"""

from __future__ import annotations

import os
from typing import Literal

OptimizationLevel = Literal["disabled", "basic", "extended"]

LEVEL: OptimizationLevel = "basic"


def optimize(src: str | os.PathLike[str], dst: str | os.PathLike[str], level: OptimizationLevel = LEVEL) -> str:
    """Write ``src`` optimized at ``level`` to ``dst`` and return the level used.

    ``level="disabled"`` copies the model unchanged.
    """
    import onnx
    import onnxruntime as ort

    from modelfn_runtime.custom_ops import library_path

    from .parity import custom_library

    if level == "disabled":
        onnx.save(onnx.load(os.fspath(src)), os.fspath(dst))
        return level
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = os.fspath(dst)
    library = custom_library(src)
    if library is not None:  # loading (and optimizing) runs none of its ops: no need for a TensorFlow-free process
        options.register_custom_ops_library(library_path(library))
    ort.InferenceSession(os.fspath(src), options, providers=["CPUExecutionProvider"])
    model = onnx.load(os.fspath(dst))
    strip_unused_opsets(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.fspath(dst))
    return level


def strip_unused_opsets(model: "onnx.ModelProto") -> None:  # type: ignore[name-defined]  # noqa: F821
    """Drop opset imports of domains no node uses (the default domain is always kept)."""
    used = {""}

    def scan(graph) -> None:  # noqa: ANN001
        for node in graph.node:
            used.add(node.domain or "")
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    scan(attr.g)
                for sub in attr.graphs:
                    scan(sub)

    scan(model.graph)
    for function in model.functions:
        used.add(function.domain or "")
        scan(function)
    keep = [op for op in model.opset_import if (op.domain or "") in used or op.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
