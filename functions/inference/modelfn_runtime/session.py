"""The model: one ONNX Runtime session and its card, loaded once, run per request.

Load and predict stay apart: ``ModelSession.load`` is init work, ``run`` is the only thing a
request does with the model. ``run`` validates the named tensors against the card, so protocol
codecs only have to decode.

Example:
    >>> model = ModelSession.load("models/digits/1")            # doctest: +SKIP
    >>> model.run({"pixels": np.zeros((1, 64), np.float32)})   # doctest: +SKIP
    {'probs': array([[...]], dtype=float32)}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import cuda, providers  # noqa: F401 - cuda: onnxruntime-gpu's CUDA libraries load at import
from .artifacts import ModelLoadError
from .digest import sha256_file
from .errors import BadRequest, quote
from .modelcard import ARTIFACT_FILE, CARD_FILE, ModelCard, TensorSpec
from .tensors import ORT_TYPES, datatype_of, from_ort, to_ort


@dataclass
class ModelSession:
    card: ModelCard
    session: ort.InferenceSession
    provider: str
    threads: int
    source: Path | None = None
    """The directory the model was loaded from (SnapStart's after-restore hook reopens it with other threads)."""

    @classmethod
    def load(cls, model_dir: str | Path, *, preference: str = "auto", threads: int | None = None) -> "ModelSession":
        """Verify ``model.onnx`` against ``modelcard.json`` and open one session on the best working provider."""
        model_dir = Path(model_dir)
        card_path, model_path = model_dir / CARD_FILE, model_dir / ARTIFACT_FILE
        for path in (card_path, model_path):
            if not path.is_file():
                raise ModelLoadError(f"{path} is missing; export the model with `modelfn export` into that directory")
        try:
            card = ModelCard.read(card_path)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelLoadError(
                f"{card_path} is not a valid model card ({type(error).__name__}: {str(error)[:120]}); "
                "re-export the model with `modelfn export` or push it again"
            ) from None
        digest = sha256_file(model_path)
        if digest != card.artifact.sha256:
            raise ModelLoadError(
                f"{model_path} has sha256 {digest} but its card records {card.artifact.sha256}; re-export or re-push the model"
            )
        options = providers.session_options(threads)
        names = providers.requested_providers(preference)
        session = ort.InferenceSession(str(model_path), options, providers=names, provider_options=providers.provider_options(names))
        model = cls(card, session, session.get_providers()[0], options.intra_op_num_threads, model_dir)
        model._check_signature()
        return model

    def run(self, inputs: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the model on named tensors; BadRequest for anything the card does not accept."""
        self._check_inputs(inputs)
        names = output_names or [spec.name for spec in self.card.outputs]
        for name in names:
            if self.card.output(name) is None:
                raise BadRequest(f"unknown output {quote(name)}; this model's outputs are {self._names(self.card.outputs)}")
        values = self.session.run(names, {name: to_ort(name, array) for name, array in inputs.items()})
        return {name: from_ort(value) for name, value in zip(names, values)}

    def _check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        expected = self._names(self.card.inputs)
        unknown = sorted(set(inputs) - set(expected))
        if unknown:
            raise BadRequest(f"unknown input {quote(unknown[0])}; this model's inputs are {expected}")
        missing = [name for name in expected if name not in inputs]
        if missing:
            raise BadRequest(f"missing input {missing[0]!r}; this model needs all of {expected}")
        batch_sizes = set()
        for spec in self.card.inputs:
            array = inputs[spec.name]
            if datatype_of(array) != spec.datatype:
                raise BadRequest(
                    f"input {spec.name!r} has datatype {datatype_of(array)} but the model expects {spec.datatype}"
                )
            if not spec.accepts_shape(array.shape):
                raise BadRequest(
                    f"input {spec.name!r} has shape {list(array.shape)} but the model expects {spec.shape} "
                    "(-1 is any size)"
                )
            if spec.shape and spec.shape[0] == -1:
                batch_sizes.add(array.shape[0])
        if len(batch_sizes) > 1:
            raise BadRequest(f"inputs disagree on the batch size: {sorted(batch_sizes)}; send one batch size")

    def _check_signature(self) -> None:
        actual = {arg.name: ORT_TYPES.get(arg.type) for arg in self.session.get_inputs()}
        actual.update({arg.name: ORT_TYPES.get(arg.type) for arg in self.session.get_outputs()})
        for spec in [*self.card.inputs, *self.card.outputs]:
            if actual.get(spec.name) != spec.datatype:
                raise ModelLoadError(
                    f"model card and model.onnx disagree on {spec.name!r} ({spec.datatype} vs {actual.get(spec.name)}); "
                    "re-export the model so the card is written from the artifact"
                )

    @staticmethod
    def _names(specs: list[TensorSpec]) -> list[str]:
        return [spec.name for spec in specs]
