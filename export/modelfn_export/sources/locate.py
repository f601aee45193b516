"""Find and load a SOURCE: :func:`classify_source` (no TensorFlow) and :func:`load_source`.

Example:
    >>> classify_source("pkg.module:build").kind
    'python'
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import ExportError, one_line
from .keras_model import from_keras_model
from .saved_model import load_saved_model
from .tf_import import import_tensorflow
from .types import LoadedSource, SourceSpec

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_PYTHON_SOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_FIX = "pass a .keras file, a SavedModel directory, or package.module:function"



def classify_source(source: str | os.PathLike[str]) -> SourceSpec:
    """Decide what kind of source ``source`` names, without importing TensorFlow.

    Raises:
        ExportError: the path does not exist, or is neither a Keras file nor a SavedModel directory.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SourceSpec("saved_model", text)
        raise ExportError(f"source '{text}' is a directory without saved_model.pb", _SOURCE_FIX)
    if path.is_file():
        if path.suffix.lower() in KERAS_SUFFIXES:
            return SourceSpec("keras", text)
        raise ExportError(f"source '{text}' is not a .keras/.h5 file", _SOURCE_FIX)
    if _PYTHON_SOURCE.match(text):
        return SourceSpec("python", text)
    raise ExportError(f"source '{text}' does not exist", _SOURCE_FIX)


def load_source(source: Any, signature: str = "serving_default") -> LoadedSource:
    """Load ``source`` (a path, ``module:function``, or an in-memory ``keras.Model``).

    Args:
        source: a ``.keras``/``.h5`` file, a SavedModel directory, ``package.module:function``, or a
            ``keras.Model`` instance.
        signature: the SavedModel signature to export (ignored for Keras models).

    Raises:
        ExportError: the source cannot be found, loaded, or does not yield a usable model.
    """
    import_tensorflow()
    import keras

    if isinstance(source, keras.Model):
        return from_keras_model(source, kind="keras", location=f"<in-memory model '{source.name}'>")
    spec = classify_source(source)
    if spec.kind == "keras":
        return from_keras_model(_load_keras_file(spec.location), kind="keras", location=spec.location)
    if spec.kind == "python":
        return from_keras_model(_call_python_source(spec.location), kind="python", location=spec.location)
    return load_saved_model(spec.location, signature)


def _load_keras_file(location: str) -> Any:
    import keras

    try:
        return keras.models.load_model(location, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's to fix
        detail = one_line(exc)[:300]
        fix = (
            "build the model in Python and pass package.module:function instead"
            if "safe_mode" in detail or "custom" in detail.lower() or "Unknown" in detail
            else "check that the file is a model saved with model.save('x.keras')"
        )
        raise ExportError(f"cannot load Keras model '{location}': {type(exc).__name__}: {detail}", fix) from None


def _call_python_source(location: str) -> Any:
    import keras

    module_name, func_name = location.split(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ExportError(
                f"source '{location}' does not exist: no module named '{exc.name}'",
                f"{_SOURCE_FIX}; run from the directory that contains the module or add it to PYTHONPATH",
            ) from None
        raise ExportError(
            f"importing '{module_name}' failed: ModuleNotFoundError: {one_line(exc)}",
            "install the missing package or fix the import in the module",
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"importing '{module_name}' failed: {type(exc).__name__}: {one_line(exc)[:300]}",
            "fix the error in the module so that it imports cleanly",
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ExportError(
            f"module '{module_name}' has no function '{func_name}'",
            "pass package.module:function naming a function that returns a keras.Model",
        )
    try:
        model = func()
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"calling '{location}' failed: {type(exc).__name__}: {one_line(exc)[:300]}",
            "make the function build and return the model without arguments",
        ) from None
    if not isinstance(model, keras.Model):
        raise ExportError(
            f"'{location}' returned {type(model).__name__}, not a keras.Model",
            "make the function return the keras.Model to export",
        )
    return model
