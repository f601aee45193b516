"""The model: one ONNX Runtime session and its card, loaded once, run per request.

Load and predict stay apart: ``ModelSession.load`` is init work, ``run`` is the only thing a
request does with the model. ``run`` validates the named tensors against the card (``validation``,
the rules the protocol codecs apply too), so a tensor built any other way is checked just the same.

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

from . import cuda, custom_ops, providers  # noqa: F401 - cuda: onnxruntime-gpu's CUDA libraries load at import
from .artifacts import ModelLoadError
from .digest import sha256_file
from .modelcard import ARTIFACT_FILE, CARD_FILE, ModelCard
from .tensors import ORT_TYPES, datatype_of, from_ort, to_ort
from .validation import check_inputs, check_outputs


@dataclass
class ModelSession:
    card: ModelCard
    session: ort.InferenceSession
    provider: str
    threads: int
    source: Path | None = None
    """The directory the model was loaded from (SnapStart's after-restore hook reopens it with other threads)."""

    @classmethod
    def load(cls, model_dir: str | Path, *, preference: str = "auto", threads: int | None = None,
             sha256: str | None = None) -> "ModelSession":
        """Verify ``model.onnx`` against ``modelcard.json`` and open one session on the best working provider.

        ``sha256`` is the artifact's digest when the caller has just computed it (``artifacts`` hashes a model it
        downloads from S3): it is compared with the card instead of hashing the file a second time.
        """
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
        digest = sha256 or sha256_file(model_path)
        if digest != card.artifact.sha256:
            raise ModelLoadError(
                f"{model_path} has sha256 {digest} but its card records {card.artifact.sha256}; re-export or re-push the model"
            )
        options = providers.session_options(threads)
        custom_ops.register(options, card)  # the library its card names (raw-text models: onnxruntime-extensions)
        names = providers.requested_providers(preference)
        session = ort.InferenceSession(str(model_path), options, providers=names, provider_options=providers.provider_options(names))
        model = cls(card, session, session.get_providers()[0], options.intra_op_num_threads, model_dir)
        model._check_signature()
        return model

    def run(self, inputs: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the model on named tensors; BadRequest for anything the card does not accept."""
        check_inputs(self.card.inputs, {name: (datatype_of(array), array.shape) for name, array in inputs.items()})
        names = output_names or [spec.name for spec in self.card.outputs]
        check_outputs(self.card.outputs, names)
        values = self.session.run(names, {name: to_ort(name, array) for name, array in inputs.items()})
        return {name: from_ort(value) for name, value in zip(names, values)}

    def _check_signature(self) -> None:
        actual = {arg.name: ORT_TYPES.get(arg.type) for arg in self.session.get_inputs()}
        actual.update({arg.name: ORT_TYPES.get(arg.type) for arg in self.session.get_outputs()})
        for spec in [*self.card.inputs, *self.card.outputs]:
            if actual.get(spec.name) != spec.datatype:
                raise ModelLoadError(
                    f"model card and model.onnx disagree on {spec.name!r} ({spec.datatype} vs {actual.get(spec.name)}); "
                    "re-export the model so the card is written from the artifact"
                )
