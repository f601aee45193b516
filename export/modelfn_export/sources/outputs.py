"""The outputs of a wrapped source function, found by tracing it (:func:`trace_outputs`), and how they are counted.

Example:
    >>> count(2, "output")
    '2 outputs'
"""

from __future__ import annotations

from typing import Any

from ..errors import FAILED, ExportError, one_line


def trace_outputs(function: Any, specs: list[Any], location: str) -> list[str]:
    try:
        concrete = function.get_concrete_function(*specs)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"tracing the model from '{location}' with a dynamic batch dimension failed: "
            f"{type(exc).__name__}: {one_line(exc)[:300]}",
            "make the model accept any batch size (no fixed batch_size in keras.Input)",
            exit_code=FAILED,
        ) from None
    outputs = concrete.structured_outputs
    if not isinstance(outputs, dict) or not outputs:
        raise ExportError(f"model from '{location}' returns no named tensors", "return tensors from the model")
    for key, value in outputs.items():
        if not hasattr(value, "dtype"):
            raise ExportError(
                f"model output '{key}' is a {type(value).__name__}, not a tensor",
                "return a tensor, a list of tensors, or a flat dict of tensors",
            )
    return [str(k) for k in outputs]


def count(n: int, word: str) -> str:
    """``1 input``, ``2 inputs``: the phrases of a source's description."""
    return f"{n} {word}{'' if n == 1 else 's'}"
