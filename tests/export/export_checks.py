"""Assertions shared by the export tests (a module of its own: ``conftest`` is not importable reliably)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def check_version_dir(directory: Path) -> Any:
    """Assert a store version directory is complete and consistent; return its ModelCard.

    * exactly model.onnx + modelcard.json;
    * the card validates against the committed schema;
    * artifact sha256/bytes match the file;
    * ONNX Runtime loads the model with exactly the card's inputs/outputs (names, datatypes, shapes)
      and runs it on a batch of 2.
    """
    import onnxruntime as ort
    from jsonschema import Draft202012Validator

    from modelfn_runtime import custom_ops
    from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE, SCHEMA_PATH, ModelCard
    from modelfn_runtime.tensors import NUMPY_DTYPES, ORT_TYPES

    assert sorted(p.name for p in directory.iterdir()) == sorted([ARTIFACT_FILE, CARD_FILE])
    data = json.loads((directory / CARD_FILE).read_text())
    validator = Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    errors = [e.message for e in validator.iter_errors(data)]
    assert not errors, errors
    card = ModelCard.read(directory / CARD_FILE)
    raw = (directory / ARTIFACT_FILE).read_bytes()
    assert card.artifact.sha256 == hashlib.sha256(raw).hexdigest()
    assert card.artifact.bytes == len(raw)
    assert card.version == directory.name and card.name == directory.parent.name
    assert card.created.endswith("Z")

    options = ort.SessionOptions()
    custom_ops.register(options, card)  # the library the card names, as ModelSession does
    session = ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])

    def signature(args: Any) -> list[tuple[str, str, list[int]]]:
        return [(a.name, ORT_TYPES[a.type], [d if isinstance(d, int) else -1 for d in a.shape]) for a in args]

    assert signature(session.get_inputs()) == [(s.name, s.datatype, s.shape) for s in card.inputs]
    assert signature(session.get_outputs()) == [(s.name, s.datatype, s.shape) for s in card.outputs]
    for spec in card.inputs + card.outputs:
        assert spec.shape[0] == -1, f"batch dimension of {spec.name} must be dynamic"

    rng = np.random.default_rng(0)
    feeds = {}
    for spec in card.inputs:
        shape = [2 if d == -1 else d for d in spec.shape]
        dtype = NUMPY_DTYPES[spec.datatype]
        if spec.datatype == "BYTES":
            feeds[spec.name] = np.full(shape, "text", dtype=object)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 3, shape).astype(dtype)
        else:
            feeds[spec.name] = rng.random(shape).astype(dtype)
    outputs = session.run(None, feeds)
    assert [o.shape[0] for o in outputs] == [2] * len(outputs)
    return card


def store_is_clean(out: Path) -> bool:
    """True when ``out`` does not exist or holds no temporary or partial directories."""
    if not out.exists():
        return True
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    return not leftovers


