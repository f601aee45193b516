"""The first steps: check what needs no TensorFlow, import the toolchain, load the source, open a workspace.

Example:
    >>> checked = check_inputs(ExportOptions("digits"), SourceInput(keras_model))   # doctest: +SKIP
    >>> checked.label                                                               # doctest: +SKIP
    'in-memory Keras model'
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from .. import store
from ..errors import ExportError
from ..options import ExportOptions
from ..progress import Steps
from ..sources import LoadedSource, classify_source, import_tensorflow, load_source
from .values import CheckedSource, SourceInput, Toolchain, Workspace


def check_inputs(options: ExportOptions, source: SourceInput) -> CheckedSource:
    """What the options could not check on their own: the store, the source and the samples file (no TensorFlow).

    Raises:
        ExportError: the version exists, the source or the samples file is missing (exit 2).
    """
    if options.version is not None:
        store.check_version_free(options.out, options.name, str(options.version))
    if isinstance(source.value, (str, os.PathLike)):
        spec = classify_source(source.value)
        label = f"{spec.kind} source '{spec.location}'"
    else:
        label = "in-memory Keras model"
    if options.samples is not None and not Path(options.samples).is_file():
        raise ExportError(
            f"samples file '{options.samples}' does not exist", "pass an existing .npy or .npz file to --samples"
        )
    return CheckedSource(source.value, label)


def import_tools(progress: Steps) -> Toolchain:
    """Import TensorFlow (quietly), Keras, ONNX and tf2onnx, so the later steps' timings are their own."""
    with progress.step("importing TensorFlow"):
        import_tensorflow()
        import keras  # noqa: F401
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    return Toolchain()


def load_model(source: CheckedSource, options: ExportOptions, tools: Toolchain, progress: Steps) -> LoadedSource:
    """Load the source into a flat-signature ``tf.function`` (see :mod:`modelfn_export.sources`)."""
    with progress.step(f"loading {source.label}"):
        return load_source(source.value, options.signature)


def open_workspace(options: ExportOptions, cleanup: ExitStack) -> Workspace:
    """Pick the version and open a staging directory in the store that the run removes unless it is committed."""
    version = str(options.version) if options.version is not None else store.next_version(options.out, options.name)
    staging = cleanup.enter_context(store.Staging(options.out, options.name))
    work = staging.path / "work"
    work.mkdir()
    return Workspace(staging, work, version)
