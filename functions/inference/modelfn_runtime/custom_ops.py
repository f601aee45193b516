"""Custom-op libraries: the card says which one a model needs, every session of that model registers it.

A raw-text model (``TextVectorization`` inside, exported by ``modelfn export``) uses string ops of the
``ai.onnx.contrib`` domain, which onnxruntime-extensions implements; its card's ``custom_ops`` names the
library (``{"library": "onnxruntime-extensions", "domain": "ai.onnx.contrib", "ops": [...]}``). The library
ships in the ONNX Runtime layer and the images.

The shared library is found with ``importlib.util.find_spec`` and a glob, without importing the
``onnxruntime_extensions`` package: its ``__init__`` imports ``onnx`` when that is installed, and the
inference path never imports onnx. (What ``get_library_path()`` returns, found the same way.)

Example:
    >>> needed_library({"custom_ops": None}) is None
    True
    >>> register(options, card)   # doctest: +SKIP
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
from typing import Any

from .artifacts import ModelLoadError

EXTENSIONS = "onnxruntime-extensions"
EXTENSIONS_DOMAIN = "ai.onnx.contrib"
LIBRARIES: dict[str, tuple[str, str]] = {EXTENSIONS: ("onnxruntime_extensions", "_extensions_pydll")}
"""Library name (the PyPI distribution) -> (its Python package, the shared library's module name)."""
DOMAINS: dict[str, str] = {EXTENSIONS_DOMAIN: EXTENSIONS}
"""Custom-op domain -> the library that implements it."""
PIN = "onnxruntime-extensions==0.15.2"
"""The version the layer, the images and ``modelfn[export]`` install (layers/onnxruntime/requirements.txt)."""

_found: dict[str, str] = {}


def library_path(library: str = EXTENSIONS) -> str:
    """Path of ``library``'s shared object, found without importing its package (cached).

    Raises:
        ModelLoadError: an unknown library, or one that is not installed, naming the fix.
    """
    if library in _found:
        return _found[library]
    if library not in LIBRARIES:
        raise ModelLoadError(f"the model card asks for the custom-op library {library!r}, which modelfn does not know; "
                             f"re-export the model with `modelfn export` (known: {', '.join(LIBRARIES)})")
    package, module = LIBRARIES[library]
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    # an extension-module suffix (not "*": the package also ships _extensions_pydll.pyi, a type stub)
    found = [path for folder in folders for suffix in importlib.machinery.EXTENSION_SUFFIXES
             for path in glob.glob(os.path.join(glob.escape(folder), module + suffix))]
    if not found:
        raise ModelLoadError(
            f"the model needs the custom-op library {library} (its card's custom_ops), which is not installed here; "
            f"deploy it with the ONNX Runtime layer or image `modelfn build` makes (they ship it), or pip install '{PIN}'"
        )
    _found[library] = found[0]
    return found[0]


def needed_library(card: Any) -> str | None:
    """The custom-op library a card (a :class:`~modelfn_runtime.modelcard.ModelCard` or its dict) names, if any."""
    entry = card.get("custom_ops") if isinstance(card, dict) else getattr(card, "custom_ops", None)
    return entry.get("library") if entry else None


def register(options: Any, card: Any) -> None:
    """Register the custom-op library the card names (nothing when it names none) in ``SessionOptions``."""
    library = needed_library(card)
    if library is not None:
        options.register_custom_ops_library(library_path(library))
