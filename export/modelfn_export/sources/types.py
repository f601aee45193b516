"""What a loaded source is: a :class:`LoadedSource` with one :class:`InputInfo` per input (importing this is free).

Example:
    >>> info = InputInfo("pixels", np.dtype("float32"), (None, 64))
    >>> info.int_range is None and info.shape[0] is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SourceKind = Literal["keras", "saved_model", "python"]

DEFAULT_INT_RANGE = (0, 10)
"""Range ``[low, high)`` of generated integer inputs that feed no Embedding layer."""

@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE string names, decided without importing TensorFlow."""

    kind: SourceKind
    location: str


@dataclass(frozen=True)
class InputInfo:
    """One model input: name, numpy dtype, shape (``None`` for dynamic dims, batch first)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]
    int_range: tuple[int, int] | None = None
    """For integer inputs: the ``[low, high)`` range generated samples are drawn from."""
    float_range: tuple[Any, Any] | None = None
    """For float inputs that feed a preprocessing layer: ``(low, high)`` (scalars or arrays that
    broadcast to the input's shape) so generated samples are what the layer expects; ``None`` for
    ``[0, 1)``."""
    vocabulary: tuple[str, ...] | None = None
    """For string inputs that go straight into ``TextVectorization``/``StringLookup``: the words generated
    text is made of (``None``: no samples can be generated, ``--samples`` is needed)."""


@dataclass
class LoadedSource:
    """A loaded source, ready to convert and to run as the TensorFlow reference."""

    kind: SourceKind
    location: str
    description: str
    function: Any
    """``tf.function`` taking one positional tensor per input (in ``inputs`` order), returning a dict."""
    input_signature: list[Any]
    """The flat list of ``tf.TensorSpec`` passed to ``tf2onnx.convert.from_function``."""
    inputs: list[InputInfo]
    output_names: list[str]
    signature: str | None = None
    keep_alive: list[Any] = field(default_factory=list, repr=False)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the TensorFlow function on numpy feeds keyed by input name; numpy outputs by name."""
        import tensorflow as tf

        args = [tf.convert_to_tensor(feeds[spec.name], dtype=spec.dtype) for spec in self.inputs]
        outputs = self.function(*args)
        return {name: np.asarray(outputs[name].numpy()) for name in self.output_names}

    def card_source(self) -> dict[str, str]:
        """The card's ``source`` object."""
        data = {"kind": self.kind, "location": self.location, "description": self.description}
        if self.signature is not None:
            data["signature"] = self.signature
        return data
