"""A SavedModel directory as a source: :func:`load_saved_model` wraps one of its signatures.

Example:
    >>> loaded = load_saved_model("exported/", "serving_default")   # doctest: +SKIP
    >>> loaded.signature                                            # doctest: +SKIP
    'serving_default'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ExportError, one_line
from .outputs import count, trace_outputs
from .types import DEFAULT_INT_RANGE, InputInfo, LoadedSource


def load_saved_model(location: str, signature: str) -> LoadedSource:
    """Load the SavedModel at ``location`` and wrap its signature ``signature`` (inputs sorted by name)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(location)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"cannot load SavedModel '{location}': {type(exc).__name__}: {one_line(exc)[:300]}",
            "re-export it with model.export(dir) or tf.saved_model.save(...)",
        ) from None
    available = sorted(loaded.signatures.keys())
    if not available:
        raise ExportError(
            f"SavedModel '{location}' has no signatures",
            "export it with model.export(dir) or tf.saved_model.save(obj, dir, signatures=...)",
        )
    if signature not in loaded.signatures:
        raise ExportError(
            f"SavedModel '{location}' has no signature '{signature}'",
            f"pass --signature with one of {', '.join(available)}",
        )
    sig = loaded.signatures[signature]
    args, kwargs = sig.structured_input_signature
    if args:
        raise ExportError(
            f"signature '{signature}' of '{location}' has positional inputs",
            "export a signature with named (keyword) inputs, e.g. with model.export(dir)",
        )
    names = sorted(kwargs)
    specs = [tf.TensorSpec(kwargs[n].shape, kwargs[n].dtype, name=n) for n in names]
    infos = []
    for name, spec in zip(names, specs):
        np_dtype = np.dtype(spec.dtype.as_numpy_dtype)
        shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else None
        if shape is None:
            raise ExportError(
                f"input '{name}' of signature '{signature}' has unknown rank",
                "export the SavedModel with an input_signature of known rank",
            )
        infos.append(InputInfo(name, np_dtype, shape, DEFAULT_INT_RANGE if np_dtype.kind in "iu" else None))

    def call(*xs: Any) -> dict[str, Any]:
        return dict(sig(**dict(zip(names, xs))))

    function = tf.function(call, input_signature=specs, autograph=False)
    out_names = trace_outputs(function, specs, location)
    try:
        params = sum(int(np.prod(v.shape)) for v in loaded.variables)
        params_text = f", {params:,} params"
    except Exception:  # noqa: BLE001
        params_text = ""
    description = (
        f"SavedModel signature '{signature}' with {count(len(names), 'input')}, "
        f"{count(len(out_names), 'output')}{params_text}"
    )
    return LoadedSource(
        kind="saved_model",
        location=location,
        description=description,
        function=function,
        input_signature=specs,
        inputs=infos,
        output_names=out_names,
        signature=signature,
        keep_alive=[loaded, sig],
    )
