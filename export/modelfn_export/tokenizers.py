"""keras-hub's ``WordPieceTokenizer`` as an ONNX graph of onnxruntime-extensions ops, built from its config.

tf2onnx cannot convert the tokenizer: keras-hub runs ``tf_text.FastWordpieceTokenizer``
(``FastWordpieceTokenizeWithOffsets``, vocabulary inside a serialized model) and, lowercasing,
``CaseFoldUTF8``. A model that is exactly ``text -> WordPieceTokenizer`` (``keras.Model(text, tokenizer(text))``)
is therefore built here instead of converted, mirroring ``keras_hub.src.tokenizers.word_piece_tokenizer.pretokenize``:

  text [B] -> StringRegexReplace(CJK -> " \\0 ") -> StringRegexSplitWithOffsets(whitespace|punctuation|CJK, keep
  punctuation|CJK) -> [StringLower] -> WordpieceTokenizer (one word per row) -> CategoryMapper(vocabulary, OOV id)
  -> back to texts -> ScatterND into zeros [B, sequence_length] (padded with 0, truncated)

The parity gate then compares it with keras-hub's own tokenizer on the samples, like any conversion.

* The split pattern gets one capture group: the extensions' kernel calls ``RE2::FindAndConsume(&rest, re,
  &delim)``, which fails on a group-less pattern, and then nothing is split (``tf_text.regex_split`` adds it).
* The extensions' WordpieceTokenizer keeps the pieces it matched before a failure (``"quickly"`` -> ``quick``,
  ``[UNK]``); FastWordpiece maps the whole word to ONE ``[UNK]``: a word with any unknown piece keeps only its
  first piece, as the OOV id.
* ``lowercase=True`` lowers with ``StringLower``, not Unicode case folding: ``"Straße"`` stays ``straße``
  (keras-hub: ``strasse``); ASCII and most accented text agree. Not built (refused, naming the option):
  ``strip_accents=True`` (NFD normalization), ``split=False``, ``special_tokens``, no ``sequence_length``,
  string output.

Example:
    >>> model = wordpiece_graph(tokenizer, "text", "token_ids")   # doctest: +SKIP
    >>> [o.name for o in model.graph.output]                       # doctest: +SKIP
    ['token_ids']
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import FAILED, ExportError

CONTRIB = "ai.onnx.contrib"


class _Graph:
    """A tiny ONNX graph builder: nodes, initializers, unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        from onnx import numpy_helper

        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], outputs: int = 1, domain: str = "", **attrs: Any) -> Any:
        from onnx import helper

        names = [self.name(kind.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, names, domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def ones_like(self, x: str) -> str:
        from onnx import numpy_helper

        return self.op("ConstantOfShape", [self.op("Shape", [x])], value=numpy_helper.from_array(np.array([1], np.int64)))

    def zeros(self, shape: str) -> str:
        from onnx import numpy_helper

        return self.op("ConstantOfShape", [shape], value=numpy_helper.from_array(np.array([0], np.int64)))

    def row_ids(self, splits: str, values: str) -> tuple[str, str]:
        """``(row of each value, position of each value)`` from row splits [R+1]: row ends <= position."""
        from onnx import TensorProto

        positions = self.op("CumSum", [self.ones_like(values), self.const(0)], exclusive=1)
        ends = self.op("Slice", [splits, self.const([1]), self.const([np.iinfo(np.int64).max])])
        ge = self.op("GreaterOrEqual", [self.op("Unsqueeze", [positions, self.const([1])]), self.op("Unsqueeze", [ends, self.const([0])])])
        rows = self.op("ReduceSum", [self.op("Cast", [ge], to=TensorProto.INT64), self.const([1])], keepdims=0)
        return rows, positions


def find_wordpiece(loaded: Any) -> Any | None:
    """The keras-hub ``WordPieceTokenizer`` a loaded source is made of (``text -> tokenizer``), else ``None``."""
    model = loaded.keep_alive[0] if loaded.keep_alive else None
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    if len(layers) != 1 or type(layers[0]).__name__ != "WordPieceTokenizer" or "keras_hub" not in type(layers[0]).__module__:
        return None
    if len(loaded.inputs) != 1 or len(loaded.output_names) != 1:
        return None
    return layers[0]


def check_buildable(tokenizer: Any) -> None:
    """Refuse the WordPieceTokenizer options the graph does not reproduce, naming the option and the fix."""
    problems = {
        "strip_accents=True": bool(tokenizer.strip_accents),
        "split=False": not tokenizer.split,
        "special_tokens": bool(getattr(tokenizer, "_init_special_tokens", None)),
        "sequence_length=None": tokenizer.sequence_length is None,
        f"dtype={tokenizer.compute_dtype}": "int" not in str(tokenizer.compute_dtype),
    }
    found = [option for option, present in problems.items() if present]
    if found:
        raise ExportError(
            f"keras-hub WordPieceTokenizer with {', '.join(found)} has no ONNX graph here",
            "use sequence_length=N, an integer dtype and the default strip_accents/split/special_tokens, or tokenize "
            "client-side and export the backbone from token ids",
            exit_code=FAILED,
        )


def _words(g: _Graph, text: str, tokenizer: Any) -> tuple[str, str]:
    """Pre-tokenized words [W] and their row splits [B+1] (CJK spaced out, split, lowered)."""
    from keras_hub.src.tokenizers import word_piece_tokenizer as wp

    split = wp.WHITESPACE_PUNCTUATION_AND_CJK_REGEX if tokenizer.split_on_cjk else wp.WHITESPACE_AND_PUNCTUATION_REGEX
    keep = wp.PUNCTUATION_AND_CJK_REGEX if tokenizer.split_on_cjk else wp.PUNCTUATION_REGEX
    if tokenizer.split_on_cjk:
        text = g.op("StringRegexReplace", [text, g.const([wp.CJK_REGEX], object), g.const([r" \0 "], object)], domain=CONTRIB)
    words, _, _, splits = g.op("StringRegexSplitWithOffsets", [text, g.const([f"({split})"], object), g.const([keep], object)],
                               outputs=4, domain=CONTRIB)
    if tokenizer.lowercase:
        words = g.op("StringLower", [words], domain=CONTRIB)
    return words, splits


def _pieces(g: _Graph, words: str, tokenizer: Any) -> tuple[str, str, str]:
    """Token ids of the word pieces [P] (a word with an unknown piece: one OOV id), and each kept piece's word."""
    from onnx import TensorProto

    vocabulary = [str(token) for token in tokenizer.vocabulary]
    unk = vocabulary.index(tokenizer.oov_token)
    pieces, piece_splits, _, _ = g.op(
        "WordpieceTokenizer", [words, g.const(np.zeros((0,), np.int64))], outputs=4, domain=CONTRIB,
        vocab=json.dumps({token: i for i, token in enumerate(vocabulary)}, ensure_ascii=False),
        suffix_indicator=tokenizer.suffix_indicator, unknown_token=tokenizer.oov_token, max_input_chars_per_word=100)
    ids = g.op("CategoryMapper", [pieces], domain="ai.onnx.ml", cats_strings=vocabulary,
               cats_int64s=list(range(len(vocabulary))), default_int64=unk)
    piece_word, piece_pos = g.row_ids(piece_splits, pieces)
    is_unk = g.op("Cast", [g.op("Equal", [ids, g.const(unk)])], to=TensorProto.INT64)
    bad_word = g.op("ScatterND", [g.zeros(g.op("Shape", [words])), g.op("Unsqueeze", [piece_word, g.const([1])]), is_unk],
                    reduction="max")
    piece_bad = g.op("Cast", [g.op("Gather", [bad_word, piece_word])], to=TensorProto.BOOL)
    first_piece = g.op("Equal", [piece_pos, g.op("Gather", [piece_splits, piece_word])])
    kept = g.op("Or", [g.op("Not", [piece_bad]), first_piece])
    ids = g.op("Compress", [g.op("Where", [piece_bad, g.const(unk), ids]), kept], axis=0)
    return ids, g.op("Compress", [piece_word, kept], axis=0), kept


def _dense(g: _Graph, text: str, ids: str, piece_text: str, kept: str, length: int) -> str:
    """The kept pieces' ids into zeros [B, length] by text and position (padded with 0, truncated)."""
    from onnx import TensorProto

    kept_pos = g.op("Compress", [g.op("CumSum", [g.op("Cast", [kept], to=TensorProto.INT64), g.const(0)], exclusive=1), kept], axis=0)
    per_text = g.op("ScatterND", [g.zeros(g.op("Shape", [text])), g.op("Unsqueeze", [piece_text, g.const([1])]),
                                  g.ones_like(kept_pos)], reduction="add")
    text_start = g.op("CumSum", [per_text, g.const(0)], exclusive=1)
    position = g.op("Sub", [kept_pos, g.op("Gather", [text_start, piece_text])])
    inside = g.op("Less", [position, g.const(length)])
    index = g.op("Concat", [g.op("Unsqueeze", [piece_text, g.const([1])]), g.op("Unsqueeze", [position, g.const([1])])], axis=1)
    shape = g.op("Concat", [g.op("Shape", [text]), g.const([length])], axis=0)
    return g.op("ScatterND", [g.zeros(shape), g.op("Compress", [index, inside], axis=0), g.op("Compress", [ids, inside], axis=0)])


def wordpiece_graph(tokenizer: Any, input_name: str, output_name: str, opset: int = 17) -> Any:
    """The ONNX model ``input_name`` [B] (strings) -> ``output_name`` [B, sequence_length] (the tokenizer's int dtype).

    Raises:
        ExportError: an option the graph does not reproduce (see :func:`check_buildable`).
    """
    from onnx import TensorProto, helper

    check_buildable(tokenizer)
    g = _Graph()
    words, word_splits = _words(g, input_name, tokenizer)
    ids, piece_word, kept = _pieces(g, words, tokenizer)
    word_text, _ = g.row_ids(word_splits, words)
    dense = _dense(g, input_name, ids, g.op("Gather", [word_text, piece_word]), kept, int(tokenizer.sequence_length))
    out_type = helper.np_dtype_to_tensor_dtype(np.dtype(str(tokenizer.compute_dtype)))
    g.nodes.append(helper.make_node("Cast", [dense], [output_name], to=out_type))
    graph = helper.make_graph(
        g.nodes, "wordpiece", [helper.make_tensor_value_info(input_name, TensorProto.STRING, [None])],
        [helper.make_tensor_value_info(output_name, out_type, [None, int(tokenizer.sequence_length)])], initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", 3),
                                                   helper.make_opsetid(CONTRIB, 1)])


def build_wordpiece(loaded: Any, opset: int) -> Any:
    """A :class:`~modelfn_export.convert.Conversion` builder: the tokenizer of ``loaded`` as an ONNX model."""
    return wordpiece_graph(find_wordpiece(loaded), loaded.inputs[0].name, loaded.output_names[0], opset)
