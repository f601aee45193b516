"""The model card: everything the serving side knows about a model besides ``model.onnx``.

The export pipeline writes ``modelcard.json`` next to ``model.onnx``; the handler reads it at init.
``SCHEMA_PATH`` is the committed JSON Schema every written card validates against.

Example:
    >>> card = ModelCard.read("models/digits/1/modelcard.json")   # doctest: +SKIP
    >>> card.inputs[0].name, card.inputs[0].datatype, card.inputs[0].shape  # doctest: +SKIP
    ('pixels', 'FP32', [-1, 64])
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("modelcard.schema.json")
SCHEMA_VERSION = "1"
ARTIFACT_FILE = "model.onnx"
CARD_FILE = "modelcard.json"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
VERSION_PATTERN = re.compile(r"[1-9][0-9]*")
"""Model names and versions, always matched with ``fullmatch`` (``match`` with ``$`` lets a trailing newline through)."""
MAX_DIMENSION = 2**31 - 1
"""No dimension of any tensor may exceed this (numpy and ONNX Runtime refuse far less than 2**63)."""
SERVING_SIGNATURE = "serving_default"
"""The one TF Serving signature a modelfn model serves (the card's signature, as the SavedModel named it)."""


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: OIP datatype and shape, ``-1`` for a dynamic dimension."""

    name: str
    datatype: str
    shape: list[int]

    def accepts_shape(self, shape: list[int] | tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(
            want == -1 or want == got for want, got in zip(self.shape, shape)
        )


@dataclass(frozen=True)
class Artifact:
    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ModelCard:
    """Typed view of ``modelcard.json`` (see ``modelcard.schema.json`` for every field)."""

    name: str
    version: str
    created: str
    artifact: Artifact
    opset: int
    producers: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parity: dict[str, Any]
    source: dict[str, Any]
    quantization: dict[str, Any] | None = None
    optimization: dict[str, Any] | None = None
    custom_ops: dict[str, Any] | None = None
    """The custom-op library the model needs (``library``, ``domain``, ``ops``; see ``custom_ops.py``), or None."""
    description: str = ""
    schema_version: str = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known and k not in ("artifact", "inputs", "outputs")},
            artifact=Artifact(**data["artifact"]),
            inputs=[TensorSpec(**spec) for spec in data["inputs"]],
            outputs=[TensorSpec(**spec) for spec in data["outputs"]],
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def read(cls, path: str | Path) -> "ModelCard":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    def input(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.outputs if spec.name == name), None)
