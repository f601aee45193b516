"""Build and validate ``modelcard.json``.

The card's ``inputs``/``outputs`` are read from the FINAL ``model.onnx`` through ONNX Runtime
(``InferenceSession.get_inputs()/get_outputs()``), so they are exactly what the serving side will
load; symbolic or unknown dimensions become ``-1``. Every card is validated against the committed
schema (``modelfn_runtime.modelcard.SCHEMA_PATH``) before it is written; a card that does not
validate is a bug and raises :class:`CardInvalid`.

Example:
    >>> inputs, outputs = onnx_signature("models/digits/1/model.onnx")   # doctest: +SKIP
    >>> inputs[0]                                                       # doctest: +SKIP
    TensorSpec(name='pixels', datatype='FP32', shape=[-1, 64])
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelfn_runtime.digest import sha256_file
from modelfn_runtime.modelcard import ARTIFACT_FILE, SCHEMA_PATH, Artifact, ModelCard, TensorSpec
from modelfn_runtime.tensors import ORT_TYPES

from .errors import FAILED, ExportError


class CardInvalid(ValueError):
    """A built card does not validate against the schema (a bug in modelfn export)."""


def artifact_of(path: str | os.PathLike[str]) -> Artifact:
    """The card's ``artifact`` object for the file at ``path`` (which must be ``model.onnx``)."""
    return Artifact(file=ARTIFACT_FILE, sha256=sha256_file(path), bytes=Path(path).stat().st_size)


def onnx_signature(path: str | os.PathLike[str]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs as ONNX Runtime loads them: OIP datatypes, ``-1`` for non-fixed dims.

    Raises:
        ExportError: a tensor type the Open Inference Protocol cannot carry (exit 1).
    """
    from .parity import onnx_session

    session = onnx_session(path)

    def spec(arg: Any) -> TensorSpec:
        datatype = ORT_TYPES.get(arg.type)
        if datatype is None:
            raise ExportError(
                f"tensor '{arg.name}' has type {arg.type}, which the inference protocols cannot carry",
                "make the model take and return plain tensors",
                exit_code=FAILED,
            )
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
        return TensorSpec(name=arg.name, datatype=datatype, shape=shape)

    return [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


def onnx_opset(path: str | os.PathLike[str]) -> int:
    """The default-domain opset the model at ``path`` imports."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return next(int(op.version) for op in model.opset_import if op.domain in ("", "ai.onnx"))


def producers(custom_ops: dict[str, Any] | None = None) -> dict[str, str]:
    """Versions of the tools that produced the artifact (and of the custom-op library it needs, if any)."""
    from importlib.metadata import PackageNotFoundError, version

    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    data = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    for distribution in ["modelfn", *([custom_ops["library"]] if custom_ops else [])]:
        try:
            data[distribution] = version(distribution)
        except PackageNotFoundError:
            pass
    return data


def utc_now() -> str:
    """Current UTC time as ISO-8601 with a ``Z`` suffix, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(Path(SCHEMA_PATH).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_card(card: ModelCard | dict[str, Any]) -> None:
    """Validate a card against the committed JSON Schema.

    Raises:
        CardInvalid: listing every violation.
    """
    data = card.to_dict() if isinstance(card, ModelCard) else card
    data = json.loads(json.dumps(data))  # what will be on disk (tuples -> lists, ...)
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        detail = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
        raise CardInvalid(f"model card does not validate against {SCHEMA_PATH.name}: {detail}")


def build_card(
    *,
    name: str,
    version: str,
    artifact_path: str | os.PathLike[str],
    source: dict[str, Any],
    parity: dict[str, Any],
    quantization: dict[str, Any],
    optimization: dict[str, Any],
    description: str = "",
    custom_ops: dict[str, Any] | None = None,
) -> ModelCard:
    """Assemble and validate the card for the final ``model.onnx`` at ``artifact_path``."""
    inputs, outputs = onnx_signature(artifact_path)
    card = ModelCard(
        name=name,
        version=str(version),
        created=utc_now(),
        artifact=artifact_of(artifact_path),
        opset=onnx_opset(artifact_path),
        producers=producers(custom_ops),
        inputs=inputs,
        outputs=outputs,
        parity=parity,
        source=source,
        quantization=quantization,
        optimization=optimization,
        custom_ops=custom_ops,
        description=description,
    )
    validate_card(card)
    return card
