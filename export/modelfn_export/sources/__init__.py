"""Load the SOURCE of an export: a Keras model file, a SavedModel directory, or ``module:function``.

Whatever the source, :func:`load_source` returns a :class:`LoadedSource`: a ``tf.function`` with an
explicit, flat input signature (one ``tf.TensorSpec`` per input, named after the input, batch
dimension ``None``) that returns a dict keyed by human output names. The converter and the parity
gate both use that one function, so ONNX and TensorFlow are compared on exactly what was converted.

* ``model.keras`` / ``model.h5``: ``keras.models.load_model(path, compile=False)``.
* a SavedModel directory (has ``saved_model.pb``): ``tf.saved_model.load(dir).signatures[signature]``;
  Keras 3 ``model.export()`` directories expose ``serve`` and ``serving_default``.
* ``package.module:function``: imported with the current directory on ``sys.path``; the function is
  called without arguments and must return a ``keras.Model``.

Functional and Sequential models are named after their ``keras.Input``s and output layers;
subclassed models (no ``model.inputs``) get Keras's own export signature (the shapes of their first
call, as ``model.export()`` uses) named after ``call()``'s parameters or dict keys. Float inputs that
go straight into ``Rescaling``/``Normalization`` record the value range those layers expect, so
generated samples exercise the model.

:func:`classify_source` checks the source without importing TensorFlow, so bad input fails fast.

One module per job: ``types`` (:class:`LoadedSource`, :class:`InputInfo`), ``locate`` (classify and
load a SOURCE, ``module:function`` sources), ``keras_model``, ``saved_model``, ``ranges`` (sample
ranges read off preprocessing and Embedding layers), ``outputs`` (tracing the named outputs),
``tf_import`` (a quiet TensorFlow import). Every public name is importable from here.

Example:
    >>> spec = classify_source("models_src/digits.keras")   # doctest: +SKIP
    >>> loaded = load_source("models_src/digits.keras")      # doctest: +SKIP
    >>> [i.name for i in loaded.inputs], loaded.output_names  # doctest: +SKIP
    (['pixels'], ['probs'])
"""

from __future__ import annotations

from .keras_model import from_keras_model
from .locate import KERAS_SUFFIXES, classify_source, load_source
from .saved_model import load_saved_model
from .tf_import import import_tensorflow
from .types import DEFAULT_INT_RANGE, InputInfo, LoadedSource, SourceKind, SourceSpec

__all__ = [
    "DEFAULT_INT_RANGE",
    "KERAS_SUFFIXES",
    "InputInfo",
    "LoadedSource",
    "SourceKind",
    "SourceSpec",
    "classify_source",
    "from_keras_model",
    "import_tensorflow",
    "load_saved_model",
    "load_source",
]
