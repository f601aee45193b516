"""The steps that decide how tf2onnx runs (before ``convert``) and what the converted model needs (after it).

``conversion`` starts the :class:`~modelfn_export.convert.Conversion` (today's handlers); ``nested-functions``
adds the GraphDef transform that inlines nested function calls (ConvNeXt's XLA grouped convs,
:mod:`modelfn_export.nested`); ``text-ops`` turns a raw-text model's string ops into ``ai.onnx.contrib`` ops
(:mod:`modelfn_export.text_ops`) or refuses the ones that would compute something else; ``keras-hub-tokenizer``
builds a keras-hub WordPieceTokenizer's graph from its config (:mod:`modelfn_export.tokenizers`). After ``convert``,
``custom-ops`` records the custom-op library the model uses, for the card.

Example:
    >>> inline_functions(plan_conversion()).transforms[0].__name__
    'inline_nested_functions'
"""

from __future__ import annotations

from ..convert import Conversion
from ..errors import FAILED, ExportError
from ..nested import inline_nested_functions
from ..progress import Steps
from ..sources import LoadedSource
from .values import Converted, CustomOps

CONTRIB_OPSET = 1


def plan_conversion() -> Conversion:
    """Today's conversion: tf2onnx with modelfn's handlers (``Erfc``)."""
    return Conversion()


def inline_functions(conversion: Conversion) -> Conversion:
    """Inline function calls left in the frozen graph (a no-op for a graph without any)."""
    return conversion.extended(transforms=(inline_nested_functions,))


def text_conversion(loaded: LoadedSource, conversion: Conversion, progress: Steps) -> Conversion:
    """For a model with TensorFlow string ops: the ``ai.onnx.contrib`` opset and the text handlers, or a refusal.

    Raises:
        ExportError: a string op whose ONNX counterpart computes something else (hashing), or
            onnxruntime-extensions is not installed (exit 1).
    """
    from .. import text_ops

    ops = _traced_ops(loaded) & text_ops.STRING_OPS
    if not ops:
        return conversion
    refused = sorted(ops & set(text_ops.REFUSED))
    if refused:
        raise ExportError(
            f"TensorFlow op '{refused[0]}' has no faithful ONNX conversion", text_ops.REFUSED[refused[0]], exit_code=FAILED
        )
    _require_extensions()
    progress.note(f"raw-text model (string ops {', '.join(sorted(ops))}): converting with the {text_ops.CONTRIB_DOMAIN} "
                  "opset of onnxruntime-extensions")
    return conversion.extended(
        handlers=text_ops.TEXT_HANDLERS,
        extra_opsets=((text_ops.CONTRIB_DOMAIN, CONTRIB_OPSET),),
        patches=(text_ops.selectv2_shapes,),
        fixes={op: text_ops.UNSUPPORTED_FIX for op in text_ops.STRING_OPS},
    )


def keras_hub_tokenizer(loaded: LoadedSource, conversion: Conversion, progress: Steps) -> Conversion:
    """A model that is exactly ``text -> keras_hub WordPieceTokenizer``: built as an onnxruntime-extensions graph from
    the tokenizer's config (:mod:`modelfn_export.tokenizers`) instead of converted."""
    from .. import tokenizers

    tokenizer = tokenizers.find_wordpiece(loaded)
    if tokenizer is None:
        return conversion
    tokenizers.check_buildable(tokenizer)
    _require_extensions()
    progress.note(f"keras-hub WordPieceTokenizer ({len(tokenizer.vocabulary)} tokens): building its ONNX graph from its config")
    return conversion.extended(builder=tokenizers.build_wordpiece)


def _traced_ops(loaded: LoadedSource) -> set[str]:
    from ..text_ops import graph_ops

    concrete = loaded.function.get_concrete_function(*loaded.input_signature)
    return graph_ops(concrete.graph.as_graph_def())


def _require_extensions() -> None:
    from modelfn_runtime.artifacts import ModelLoadError
    from modelfn_runtime.custom_ops import PIN, library_path

    try:
        library_path()
    except ModelLoadError:
        raise ExportError(
            "this raw-text model needs onnxruntime-extensions (string ops as ai.onnx.contrib custom ops), which is not installed",
            f"pip install '{PIN}' (part of modelfn[export]), or tokenize client-side and export the model from token ids",
            exit_code=FAILED,
        ) from None


def record_custom_ops(converted: Converted, conversion: Conversion) -> CustomOps | None:
    """The card's ``custom_ops`` for a converted model that uses a custom-op domain; nothing otherwise."""
    import onnx

    from modelfn_runtime.custom_ops import DOMAINS

    if not set(conversion.domains) & set(DOMAINS):
        return None  # converted without a custom-op opset: nothing to look for (and no large model to parse)

    model = onnx.load(converted.path, load_external_data=False)
    ops: dict[str, set[str]] = {}
    for node in model.graph.node:
        if node.domain in DOMAINS:
            ops.setdefault(node.domain, set()).add(node.op_type)
    if not ops:
        return None
    (domain, names), = ops.items()  # one custom-op library today
    library = DOMAINS[domain]
    from importlib.metadata import version

    return CustomOps({"library": library, "version": version(library), "domain": domain, "ops": sorted(names)})
