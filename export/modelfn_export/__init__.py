"""modelfn export: TensorFlow/Keras -> verified ONNX model + model card, and S3 push.

Importing this package is cheap (TensorFlow is imported only when an export runs).

Example:
    >>> from modelfn_export import export_model, push_model, ExportError
    >>> card = export_model("digits.keras", "digits")                       # doctest: +SKIP
    >>> push_model("digits", card.version, bucket="my-models", prefix="models/")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelfn_runtime.modelcard import ModelCard

from .errors import ExportError

if TYPE_CHECKING:
    from .api import export_model
    from .push import PushResult, push_model

__all__ = ["ExportError", "ModelCard", "PushResult", "export_model", "push_model"]


def __getattr__(name: str) -> Any:
    if name == "export_model":
        from .api import export_model

        return export_model
    if name in ("push_model", "PushResult"):
        from . import push

        return getattr(push, name)
    raise AttributeError(f"module 'modelfn_export' has no attribute {name!r}")
