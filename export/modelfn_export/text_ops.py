"""Raw-text models: TensorFlow's string ops as ``ai.onnx.contrib`` ops that onnxruntime-extensions implements.

A Keras text classifier keeps its preprocessing inside the model (``TextVectorization`` -> ``Embedding``
-> pooling -> ``Dense``), so the served model takes raw strings. tf2onnx maps some TensorFlow string ops
to the ``ai.onnx.contrib`` domain when it is given that extra opset (``StaticRegexReplace`` ->
``StringRegexReplace``); the handlers here cover the rest of what ``TextVectorization`` emits, with
TensorFlow's semantics where tf2onnx's own mapping differs:

==========================  ===========================================================================
TensorFlow op               ONNX
==========================  ===========================================================================
``StringLower``             ``StringNormalizer(LOWER, locale="C")``: ASCII only, as ``tf.strings.lower``
``StringStrip``             ``StringRegexReplace(^ws+|ws+$)`` (the extensions' StringStrip keeps "   ")
``StringSplitV2``           ``StringSplit``: sep ``''`` = runs of ASCII whitespace, one-byte seps as is
``Equal``/``NotEqual``      ``StringEqual`` on strings, operands broadcast first (empty-input crash)
``StringNGrams``            index arithmetic + ``StringConcat`` (the extensions have no n-gram op)
``RaggedBincount``          ``ScatterND(add)`` per row (multi_hot / count / tf_idf on split text)
``DenseBincount``           ``ScatterND(add)`` per row of a 2-D input
``RaggedTensorToTensor``    tf2onnx's, with the all-rows-empty batch fixed (width 0, no division by 0)
==========================  ===========================================================================

:data:`REFUSED` names the string ops that must not be converted (their ONNX counterpart computes something
else): the export stops with one :class:`~modelfn_export.errors.ExportError` naming the op and the fix.
:func:`selectv2_shapes` fixes tf2onnx's shape inference of ``SelectV2`` while a text model converts.

Example:
    >>> sorted(TEXT_HANDLERS)[:3]
    ['DenseBincount', 'Equal', 'NotEqual']
    >>> "StringToHashBucketFast" in REFUSED
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

CONTRIB_DOMAIN = "ai.onnx.contrib"
"""The custom-op domain onnxruntime-extensions registers."""
ASCII_WHITESPACE = " \t\n\v\f\r"
"""What TF's StringSplitV2 with sep='' splits on (absl::ascii_isspace), runs collapsed, ends stripped."""

STRING_OPS = frozenset({
    "StringSplitV2", "StringSplit", "StaticRegexReplace", "RegexReplace", "StringLower", "StringUpper", "StringStrip",
    "StringNGrams", "StringJoin", "ReduceJoin", "UnicodeDecode", "UnicodeDecodeWithOffsets", "UnicodeEncode",
    "UnicodeTranscode", "StringToHashBucketFast", "StringToHashBucketStrong", "StringToHashBucket", "Substr",
    "StringLength", "RegexFullMatch", "StaticRegexFullMatch", "AsString", "StringFormat",
    # tensorflow-text (keras-hub tokenizers)
    "FastWordpieceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets", "RegexSplitWithOffsets", "CaseFoldUTF8",
    "NormalizeUTF8", "SentencepieceOp", "SentencepieceTokenizeOp", "UnicodeScriptTokenizeWithOffsets",
})
"""TensorFlow ops that make a model a raw-text model (its graph is converted with the ``ai.onnx.contrib`` opset)."""

_HASH_FIX = ("onnxruntime-extensions hashes strings differently from TensorFlow (FarmHash Fingerprint64), so the "
             "served model would use other buckets; use StringLookup/TextVectorization with num_oov_indices=1 instead of "
             "Hashing or several OOV buckets, or hash client-side and send the bucket ids")
REFUSED: dict[str, str] = {
    "StringToHashBucketFast": _HASH_FIX,
    "StringToHashBucketStrong": _HASH_FIX,
    "StringToHashBucket": _HASH_FIX,
}
"""String ops whose ONNX counterpart computes something else: op -> the fix the refusal names."""

UNSUPPORTED_FIX = (
    "tokenize client-side and export the model from token ids, or use the supported TextVectorization options: "
    "standardize lower / strip_punctuation / lower_and_strip_punctuation / None, split whitespace / None, ngrams, "
    "output_mode int / multi_hot / count / tf_idf"
)
"""The fix for a string op that has no conversion at all (e.g. ``split="character"``'s UnicodeDecode)."""


def _const(ctx: Any, value: Any, dtype: Any = np.int64) -> str:
    from tf2onnx import utils

    return ctx.make_const(utils.make_name("text_c"), np.array(value, dtype)).output[0]


def _op(ctx: Any, kind: str, inputs: list[str], **attr: Any) -> str:
    return ctx.make_node(kind, inputs, attr=attr).output[0]


def _ones_like(ctx: Any, x: str) -> str:
    from onnx import numpy_helper

    return ctx.make_node("ConstantOfShape", [_op(ctx, "Shape", [x])],
                         attr={"value": numpy_helper.from_array(np.array([1], np.int64))}).output[0]


def _to_contrib(node: Any, op_type: str) -> None:
    from tf2onnx import constants

    node.type = op_type
    node.domain = constants.CONTRIB_OPS_DOMAIN
    for key in list(node.attr):
        del node.attr[key]


def string_lower(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF StringLower -> StringNormalizer(LOWER, locale="C").

    tf2onnx's own handler leaves ``locale`` unset, so ONNX Runtime uses en_US.UTF-8 and fails to load where that
    locale is not installed (Lambda); "C" is always there and lowers ASCII only, exactly what
    ``tf.strings.lower(encoding='')`` (TextVectorization's "lower") does."""
    from tf2onnx import utils
    from tf2onnx.custom_opsets.string_ops import StringLower

    encoding = node.get_attr_value("encoding") or b""
    utils.make_sure(encoding in (b"", ""), "StringLower with encoding=%r has no exact ONNX equivalent", encoding)
    if "encoding" in node.attr:
        del node.attr["encoding"]
    StringLower.version_10(ctx, node)
    node.set_attr("locale", "C")


def string_equal(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF Equal/NotEqual on strings -> StringEqual with both operands expanded to their common shape (the
    extensions' kernel swaps operands by element count, then fails on an empty left tensor against a scalar)."""
    from onnx import TensorProto
    from tf2onnx import constants, handler, utils

    if ctx.get_dtype(node.input[0]) != TensorProto.STRING:
        func, _ = handler.tf_op.find_effective_op(node.type, constants.ONNX_DOMAIN)
        func(ctx, node)
        return
    negate = node.type == "NotEqual"
    left, right = node.input[0], node.input[1]
    expanded = _op(ctx, "Expand", [left, _op(ctx, "Shape", [right])])  # a no-op when left already has that shape
    common = _op(ctx, "Shape", [expanded])
    ctx.replace_inputs(node, [_op(ctx, "Expand", [left, common]), _op(ctx, "Expand", [right, common])])
    _to_contrib(node, "StringEqual")
    if negate:
        out = node.output[0]
        not_node = ctx.insert_new_node_on_output("Not", out, name=utils.make_name(node.name))
        ctx.copy_shape(out, not_node.output[0])
        ctx.copy_dtype(out, not_node.output[0])


def string_strip(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF StringStrip -> StringRegexReplace(``^[ws]+|[ws]+$`` -> ``""``); TF strips absl::ascii_isspace, and RE2's
    ``\\s`` lacks ``\\v``, so the class is spelled out."""
    ws = "[ \\t\\n\\v\\f\\r]"
    pattern, rewrite = _const(ctx, [f"^{ws}+|{ws}+$"], object), _const(ctx, [""], object)
    source = node.input[0]
    _to_contrib(node, "StringRegexReplace")
    ctx.replace_inputs(node, [source, pattern, rewrite])


def string_split(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF StringSplitV2 -> StringSplit with TF's semantics.

    The extensions' kernel treats an empty separator as "split into single bytes" where TF means "split on runs
    of ASCII whitespace" (TextVectorization's ``split="whitespace"``), and splits on ANY character of sep while
    TF splits on the whole string. So: sep ``''`` -> ``" \\t\\n\\v\\f\\r"`` with skip_empty (runs collapse, ends
    stripped: exactly TF); a one-byte sep as is, keeping empty fields (TF does); longer seps and maxsplit refused."""
    from tf2onnx import utils

    sep_node = ctx.get_node_by_output(node.input[1])
    utils.make_sure(sep_node is not None and sep_node.is_const(), "StringSplitV2 needs a constant separator")
    sep = sep_node.get_tensor_value(as_list=True)
    sep = sep.decode() if isinstance(sep, bytes) else str(sep)
    maxsplit = node.get_attr_value("maxsplit", -1)
    utils.make_sure(maxsplit == -1, "StringSplitV2 with maxsplit=%s has no ONNX equivalent", maxsplit)
    utils.make_sure(len(sep.encode()) <= 1, "StringSplitV2 with the multi-character separator %r has no ONNX equivalent", sep)
    skip_empty = sep == ""
    source = node.input[0]
    _to_contrib(node, "StringSplit")
    ctx.replace_inputs(node, [source, _const(ctx, [ASCII_WHITESPACE if skip_empty else sep], object),
                              _const(ctx, [skip_empty], bool)])


def ragged_to_tensor(ctx: Any, node: Any, name: str, args: Any) -> None:
    """tf2onnx's RaggedTensorToTensor with an all-empty batch fixed.

    tf2onnx takes the natural width as ReduceMax over the row lengths: for a batch whose rows are all empty
    (``[""]`` with ``output_sequence_length=None``) that is INT64_MIN and Expand fails, and its index arithmetic
    divides by that width (0). TF gives width 0: the bounding shape is clipped at 0 and the divisor at 1."""
    from tf2onnx.onnx_opset import tensor

    originals = (tensor.ragged_nested_splits_to_sparse_indices, tensor.ragged_nested_row_ids_to_sparse_indices)
    original_lengths = tensor.ragged_lengths_to_sparse_indices

    def safe_lengths(ctx: Any, ragged_lens: str) -> Any:
        num_rows, num_cols, row_indices, col_indices = original_lengths(ctx, ragged_lens)
        for consumer in ctx.find_output_consumers(num_cols):
            if consumer.type in ("Div", "Mod") and consumer.input[1] == num_cols:
                ctx.replace_input(consumer, num_cols, _op(ctx, "Max", [num_cols, _const(ctx, [1])]), 1)
        return num_rows, num_cols, row_indices, col_indices

    def clipped(original: Any) -> Any:
        def wrapper(ctx: Any, *rest: Any) -> Any:
            indices, dense_shape = original(ctx, *rest)
            return indices, _op(ctx, "Max", [dense_shape, _const(ctx, 0)])

        return wrapper

    tensor.ragged_nested_splits_to_sparse_indices, tensor.ragged_nested_row_ids_to_sparse_indices = map(clipped, originals)
    tensor.ragged_lengths_to_sparse_indices = safe_lengths
    try:
        tensor.RaggedTensorToTensor.version_11(ctx, node)
    finally:
        tensor.ragged_nested_splits_to_sparse_indices, tensor.ragged_nested_row_ids_to_sparse_indices = originals
        tensor.ragged_lengths_to_sparse_indices = original_lengths


def _row_ids(ctx: Any, splits64: str, values: str) -> tuple[str, str]:
    """``(row of each value, position of each value)`` from row splits ``[R+1]``: rows = row ends <= position."""
    from onnx import TensorProto

    positions = _op(ctx, "CumSum", [_ones_like(ctx, values), _const(ctx, 0)], exclusive=1)
    ends = _op(ctx, "Slice", [splits64, _const(ctx, [1]), _const(ctx, [np.iinfo(np.int64).max]), _const(ctx, [0])])
    ge = _op(ctx, "GreaterOrEqual", [_op(ctx, "Unsqueeze", [positions, _const(ctx, [1])]),
                                     _op(ctx, "Unsqueeze", [ends, _const(ctx, [0])])])
    rows = _op(ctx, "ReduceSum", [_op(ctx, "Cast", [ge], to=TensorProto.INT64), _const(ctx, [1])], keepdims=0)
    return rows, positions


def _scatter_counts(ctx: Any, node: Any, rows: str, values64: str, weights: str | None, batch: str, size: str) -> None:
    """Replace ``node`` by ``out[rows[i], values[i]] += weights[i]`` (1 without weights) into zeros ``[batch, size]``;
    values outside ``[0, size)`` are ignored (TF's semantics); ``binary_output`` -> ``out > 0``."""
    from onnx import TensorProto, numpy_helper
    from tf2onnx import utils

    binary = bool(node.get_attr_value("binary_output", False))
    out_dtype = ctx.get_dtype(node.output[0])
    np_dtype = utils.map_onnx_to_numpy_type(out_dtype)
    size64 = _op(ctx, "Cast", [size], to=TensorProto.INT64)
    valid = _op(ctx, "And", [_op(ctx, "GreaterOrEqual", [values64, _const(ctx, 0)]), _op(ctx, "Less", [values64, size64])])
    pairs = _op(ctx, "Concat", [_op(ctx, "Unsqueeze", [rows, _const(ctx, [1])]), _op(ctx, "Unsqueeze", [values64, _const(ctx, [1])])],
                axis=1)
    pairs = _op(ctx, "Compress", [pairs, valid], axis=0)
    source = _op(ctx, "Cast", [weights if weights is not None else _ones_like(ctx, values64)], to=out_dtype)
    updates = _op(ctx, "Compress", [source, valid], axis=0)
    shape = _op(ctx, "Concat", [batch, _op(ctx, "Unsqueeze", [size64, _const(ctx, [0])])], axis=0)
    zero = ctx.make_node("ConstantOfShape", [shape], attr={"value": numpy_helper.from_array(np.array([0], np_dtype))}).output[0]
    ctx.remove_node(node.name)
    if binary:
        counts = _op(ctx, "ScatterND", [zero, pairs, updates], reduction="add")
        positive = _op(ctx, "Greater", [counts, _const(ctx, 0, np_dtype)])
        ctx.make_node("Cast", [positive], attr={"to": out_dtype}, outputs=[node.output[0]], name=node.name)
    else:
        ctx.make_node("ScatterND", [zero, pairs, updates], attr={"reduction": "add"}, outputs=[node.output[0]], name=node.name)


def _has_weights(ctx: Any, weights: str) -> bool:
    shape = ctx.get_shape(weights)
    return not (shape is not None and 0 in shape)


def ragged_bincount(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF RaggedBincount (TextVectorization multi_hot / count / tf_idf on split text) -> ScatterND(add).

    Inputs (splits [B+1], values [N], size [], weights [N] or [0]); output [B, size]."""
    from onnx import TensorProto
    from tf2onnx import utils

    utils.make_sure(ctx.opset >= 16, "RaggedBincount needs opset >= 16 (ScatterND reduction='add')")
    splits, values, size, weights = node.input
    splits64 = _op(ctx, "Cast", [splits], to=TensorProto.INT64)
    values64 = _op(ctx, "Cast", [values], to=TensorProto.INT64)
    rows, _ = _row_ids(ctx, splits64, values64)
    batch = _op(ctx, "Sub", [_op(ctx, "Shape", [splits64]), _const(ctx, [1])])
    _scatter_counts(ctx, node, rows, values64, weights if _has_weights(ctx, weights) else None, batch, size)


def dense_bincount(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF DenseBincount on a [B, L] input -> [B, size] counts via ScatterND(add) (tf2onnx's own handler takes the
    1-D path when the input's rank is unknown after CategoryMapper, giving shape [size])."""
    from onnx import TensorProto
    from tf2onnx import utils
    from tf2onnx.onnx_opset.tensor import Bincount

    if ctx.get_rank(node.input[0]) == 1:  # a 1-D input -> [size]: tf2onnx's own handler is right
        Bincount.any_version(ctx.opset, ctx, node)
        return
    utils.make_sure(ctx.opset >= 16, "DenseBincount needs opset >= 16 (ScatterND reduction='add')")
    values, size, weights = node.input
    values64 = _op(ctx, "Cast", [values], to=TensorProto.INT64)
    batch = _op(ctx, "Slice", [_op(ctx, "Shape", [values64]), _const(ctx, [0]), _const(ctx, [1]), _const(ctx, [0])])
    flat = _op(ctx, "Reshape", [values64, _const(ctx, [-1])])
    width = _op(ctx, "Div", [_op(ctx, "Shape", [flat]), _op(ctx, "Max", [batch, _const(ctx, [1])])])
    positions = _op(ctx, "CumSum", [_ones_like(ctx, flat), _const(ctx, 0)], exclusive=1)
    rows = _op(ctx, "Div", [positions, _op(ctx, "Max", [width, _const(ctx, [1])])])
    flat_weights = _op(ctx, "Reshape", [weights, _const(ctx, [-1])]) if _has_weights(ctx, weights) else None
    _scatter_counts(ctx, node, rows, flat, flat_weights, batch, size)


def string_ngrams(ctx: Any, node: Any, name: str, args: Any) -> None:
    """TF StringNGrams (TextVectorization ``ngrams=N`` or ``(1, 2, 3)``) -> index arithmetic + StringConcat.

    Only ``pad_width=0`` and ``preserve_short_sequences=False`` (what Keras uses). Order is TF's: per row, all
    n-grams of the first width, then of the next, each by start position."""
    from onnx import TensorProto
    from tf2onnx import constants, utils

    widths = list(node.get_attr_value("ngram_widths"))
    separator = node.get_attr_value("separator") or b""
    separator = separator.decode() if isinstance(separator, bytes) else separator
    utils.make_sure(node.get_attr_value("pad_width", 0) == 0, "StringNGrams with padding has no ONNX conversion here")
    utils.make_sure(not node.get_attr_value("preserve_short_sequences", False),
                    "StringNGrams with preserve_short_sequences has no ONNX conversion here")
    utils.make_sure(all(w >= 1 for w in widths), "StringNGrams widths must be >= 1: %r", widths)
    data, splits = node.input
    out_ngrams, out_splits = node.output
    splits_dtype = ctx.get_dtype(out_splits)
    splits64 = _op(ctx, "Cast", [splits], to=TensorProto.INT64)
    ends = _op(ctx, "Slice", [splits64, _const(ctx, [1]), _const(ctx, [np.iinfo(np.int64).max]), _const(ctx, [0])])
    lengths = _op(ctx, "Sub", [ends, _op(ctx, "Slice", [splits64, _const(ctx, [0]), _const(ctx, [-1]), _const(ctx, [0])])])
    rows, positions = _row_ids(ctx, splits64, data)
    n = _op(ctx, "Shape", [data])
    row_end = _op(ctx, "Gather", [ends, rows])
    sep = _const(ctx, [separator], object)
    grams, keys, counts = [], [], None
    stride = _op(ctx, "Mul", [n, _const(ctx, [len(widths)])])
    for k, w in enumerate(widths):
        valid = _op(ctx, "LessOrEqual", [_op(ctx, "Add", [positions, _const(ctx, w)]), row_end])
        starts = _op(ctx, "Compress", [positions, valid], axis=0)
        gram = _op(ctx, "Gather", [data, starts])
        for j in range(1, w):
            piece = _op(ctx, "Gather", [data, _op(ctx, "Add", [starts, _const(ctx, j)])])
            for right in (_op(ctx, "Expand", [sep, _op(ctx, "Shape", [gram])]), piece):
                gram = ctx.make_node("StringConcat", [gram, right], domain=constants.CONTRIB_OPS_DOMAIN).output[0]
                ctx.set_dtype(gram, TensorProto.STRING)
                ctx.set_shape(gram, [-1])
        grams.append(gram)
        row_of = _op(ctx, "Compress", [rows, valid], axis=0)
        keys.append(_op(ctx, "Add", [_op(ctx, "Mul", [row_of, stride]), _op(ctx, "Add", [_op(ctx, "Mul", [_const(ctx, k), n]), starts])]))
        count = _op(ctx, "Max", [_op(ctx, "Sub", [lengths, _const(ctx, w - 1)]), _const(ctx, 0)])
        counts = count if counts is None else _op(ctx, "Add", [counts, count])
    ctx.remove_node(node.name)
    if len(widths) == 1:
        ctx.make_node("Identity", [grams[0]], outputs=[out_ngrams])
    else:
        all_keys = _op(ctx, "Concat", keys, axis=0)
        _, order = ctx.make_node("TopK", [all_keys, _op(ctx, "Shape", [all_keys])], attr={"largest": 0, "sorted": 1},
                                 output_count=2).output
        ctx.make_node("Gather", [_op(ctx, "Concat", grams, axis=0), order], outputs=[out_ngrams])
    cumulative = _op(ctx, "Concat", [_const(ctx, [0]), _op(ctx, "CumSum", [counts, _const(ctx, 0)])], axis=0)
    ctx.make_node("Cast", [cumulative], attr={"to": splits_dtype}, outputs=[out_splits])
    ctx.set_dtype(out_ngrams, TensorProto.STRING)
    ctx.set_shape(out_ngrams, [-1])
    ctx.set_dtype(out_splits, splits_dtype)
    ctx.set_shape(out_splits, [-1])


TEXT_HANDLERS: dict[str, Any] = {
    "StringNGrams": (string_ngrams, []),
    "DenseBincount": (dense_bincount, []),
    "RaggedBincount": (ragged_bincount, []),
    "RaggedTensorToTensor": (ragged_to_tensor, []),
    "StringSplitV2": (string_split, []),
    "StringLower": (string_lower, []),
    "Equal": (string_equal, []),
    "NotEqual": (string_equal, []),
    "StringStrip": (string_strip, []),
}
"""TensorFlow op -> ``(tf2onnx handler, args)`` for raw-text models (with the ``ai.onnx.contrib`` extra opset)."""


@contextmanager
def selectv2_shapes() -> Iterator[None]:
    """While converting: give ``SelectV2`` the broadcast rank of its inputs.

    tf2onnx's legacy shape inference gives SelectV2 the shape of its 2nd input and forces it on the 3rd: wrong
    when they broadcast (Keras lookups: ``SelectV2(mask [B, L], scalar, ids [B, L])``), which makes rank-0
    outputs or "Shapes must be equal rank, but are 0 and 2"."""
    from tf2onnx import shape_inference

    original = shape_inference.infer_output_shapes_with_partial_inputs

    def infer(op: Any) -> Any:
        if op.type == "SelectV2":
            known = [s for s in (shape_inference.get_tf_tensor_shape(t) for t in op.inputs) if s is not None]
            if not known:
                return False
            op.outputs[0].set_shape(max(known, key=len))
            return True
        return original(op)

    shape_inference.infer_output_shapes_with_partial_inputs = infer
    try:
        yield
    finally:
        shape_inference.infer_output_shapes_with_partial_inputs = original


def graph_ops(graph_def: Any) -> set[str]:
    """Op types of a GraphDef, its library functions included."""
    found = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        found.update(node.op for node in function.node_def)
    return found
