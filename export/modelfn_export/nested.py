"""Nested function calls left in a frozen graph, inlined before tf2onnx sees it.

Keras 3's TensorFlow backend runs grouped convolutions (``Conv2D(groups>1)``: ConvNeXt's depthwise 7x7 convs,
RegNet/ResNeXt group convs) through ``tf.function(jit_compile=True)`` (``keras/src/backend/tensorflow/nn.py``
``conv`` -> ``_conv_xla``), because TensorFlow's CPU kernel cannot run them. That function carries
``_noinline`` and ``_XlaMustCompile``, so freezing (``convert_variables_to_constants_v2``, aggressive
inlining) and grappler's function optimizer keep it as a ``StatefulPartitionedCall``, which tf2onnx cannot
convert ("TensorFlow op 'StatefulPartitionedCall' ... has no ONNX conversion"). Dropping those attributes
from the library functions and the call nodes and running tf2onnx's grappler pass again inlines them; the
grouped ``Conv2D`` inside becomes ONNX ``Conv(group=G)``.

Example:
    >>> frozen = inline_nested_functions(graph_def, ["image:0"], ["Identity:0"])   # doctest: +SKIP
    >>> any(node.op == "StatefulPartitionedCall" for node in frozen.node)          # doctest: +SKIP
    False
"""

from __future__ import annotations

from typing import Any

CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
NOINLINE_ATTRS = ("_noinline", "_XlaMustCompile", "_XlaCompile", "_XlaScope", "_XlaSeparateCompiledGradients")
"""The attributes that keep grappler from inlining a function (XLA's compile markers, and ``_noinline``)."""


def has_calls(graph_def: Any) -> bool:
    """Whether a frozen GraphDef still calls a function."""
    return any(node.op in CALL_OPS for node in graph_def.node)


def inline_nested_functions(graph_def: Any, input_names: list[str], output_names: list[str]) -> Any:
    """The GraphDef with its remaining function calls inlined (unchanged when it has none)."""
    import tensorflow as tf
    from tf2onnx import tf_loader

    if not has_calls(graph_def):
        return graph_def
    for function in graph_def.library.function:
        for key in NOINLINE_ATTRS:
            if key in function.attr:
                del function.attr[key]
    for node in graph_def.node:
        if node.op in CALL_OPS:
            for key in NOINLINE_ATTRS:
                if key in node.attr:
                    del node.attr[key]
    with tf.Graph().as_default():  # grappler (via export_meta_graph) needs graph mode
        return tf_loader.tf_optimize(input_names, output_names, graph_def)
