"""What one request may hold, checked before anything is built for it: every rule and its message, once.

Two sources bound a request: the function's ``Limits`` (the batch size per model, ``max_batch_size`` in
infra/catalog.yaml and ``MODELFN_MAX_BATCH_SIZE`` in the function; the elements of all tensors together; the size
of one dimension) and the model card (input and output names, datatypes, shapes). Both protocol codecs (OIP, TF
Serving) and ``ModelSession.run`` ask this module, so a rule is written once and a client reads the same message
whichever way it sent the request. Lambda's 6 MB synchronous payload limit gets its 413 here too
(``payload_too_large``), with the asynchronous way around it.

Numpy-free: a tensor is checked by its name, datatype name and shape, before (or without) any array exists.

Example:
    >>> from modelfn_runtime.modelcard import TensorSpec
    >>> check_shape("x", [2, 64], TensorSpec("x", "FP32", [-1, 64]), Limits())
    >>> check_shape("x", [2, 63], TensorSpec("x", "FP32", [-1, 64]), Limits())
    Traceback (most recent call last):
    ...
    modelfn_runtime.errors.BadRequest: input 'x' has shape [2, 63] but the model expects [-1, 64] (-1 is any size)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .environment import DATA_BUCKET, MAX_BATCH_SIZE
from .errors import LAMBDA_SYNC_PAYLOAD_LIMIT, BadRequest, PayloadTooLarge, quote
from .modelcard import MAX_DIMENSION, TensorSpec

DEFAULT_MAX_BATCH_SIZE = 1024
"""Largest first (batch) dimension a dynamic-batch input accepts unless the catalog says otherwise.
Event-triggered jobs (``jobs.Settings.max_rows``) chunk their rows to at most this many, too."""


MAX_ELEMENTS = LAMBDA_SYNC_PAYLOAD_LIMIT
"""Elements of all input tensors of one request together: a 6 MB body cannot carry more (one byte each)."""

BATCH_SIZE_VARIABLE = MAX_BATCH_SIZE


@dataclass(frozen=True)
class Limits:
    """The bounds one function applies to every request.

    Example:
        >>> Limits.from_env({"MODELFN_MAX_BATCH_SIZE": "32"}).max_batch_size
        32
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_elements: int = MAX_ELEMENTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Limits":
        """Limits from ``MODELFN_MAX_BATCH_SIZE`` (a positive integer; unset: the default)."""
        raw = environ.get(BATCH_SIZE_VARIABLE, "").strip()
        if not raw:
            return cls()
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{BATCH_SIZE_VARIABLE}={raw!r} is invalid; set a positive integer such as 64")
        return cls(max_batch_size=int(raw))


# --- names: which inputs and outputs the card has -----------------------------------------------------------------

def input_spec(specs: Sequence[TensorSpec], name: str) -> TensorSpec:
    """The card's spec of input ``name``; 400 naming the model's inputs when it has none of that name."""
    spec = next((spec for spec in specs if spec.name == name), None)
    if spec is None:
        raise BadRequest(f"unknown input {quote(name)}; this model's inputs are {_names(specs)}")
    return spec


def check_complete(specs: Sequence[TensorSpec], names: Iterable[str]) -> None:
    """400 for the first of the card's inputs that ``names`` lacks."""
    given = set(names)
    missing = [spec.name for spec in specs if spec.name not in given]
    if missing:
        raise BadRequest(f"missing input {missing[0]!r}; this model needs all of {_names(specs)}")


def check_outputs(specs: Sequence[TensorSpec], names: Iterable[str]) -> None:
    """400 for the first requested output the card does not have."""
    known = set(_names(specs))
    for name in names:
        if name not in known:
            raise BadRequest(f"unknown output {quote(name)}; this model's outputs are {_names(specs)}")


# --- one tensor: datatype, shape, batch, elements ------------------------------------------------------------------

def check_datatype(name: str, datatype: str, spec: TensorSpec) -> None:
    if datatype != spec.datatype:
        raise BadRequest(f"input {name!r} has datatype {datatype} but the model expects {spec.datatype}")


def check_signature_shape(name: str, shape: Sequence[int], spec: TensorSpec) -> None:
    """400 unless ``shape`` is one the card accepts for ``spec`` (``-1``: any size)."""
    if not spec.accepts_shape(list(shape)):
        raise BadRequest(f"input {name!r} has shape {quote(list(shape))} but the model expects {spec.shape} (-1 is any size)")


def check_shape(name: str, shape: Sequence[int], spec: TensorSpec, limits: Limits) -> None:
    """400 unless ``shape`` is one the card accepts for ``spec`` within the dimension cap and the batch-size limit."""
    if any(dim > MAX_DIMENSION for dim in shape):
        raise BadRequest(f"input {name!r} has a dimension over {MAX_DIMENSION} in shape {quote(list(shape))}")
    check_signature_shape(name, shape, spec)
    if spec.shape and spec.shape[0] == -1:
        check_batch_size(f"input {name!r}", shape[0], limits)


def check_batch_size(subject: str, batch: int, limits: Limits) -> None:
    """400 when one request carries a batch over ``limits.max_batch_size`` (``subject``: what carried it)."""
    if batch > limits.max_batch_size:
        raise BadRequest(
            f"{subject} has a batch of {batch} but this model accepts at most {limits.max_batch_size} per request; "
            "split the batch into several requests"
        )


def check_elements(name: str, count: int, limits: Limits) -> None:
    """400 when one input alone holds more elements than a request may."""
    if count > limits.max_elements:
        raise BadRequest(f"input {name!r} has {count} elements, over the {limits.max_elements} a request may hold")


def check_total_elements(count: int, limits: Limits) -> None:
    """400 when the inputs together hold more elements than a request may."""
    if count > limits.max_elements:
        raise BadRequest(f"the inputs hold {count} elements together, over the {limits.max_elements} a request may hold")


def check_data_count(name: str, count: int, shape: Sequence[int]) -> None:
    """400 when an input's data does not fill the shape it declares."""
    needed = math.prod(shape)
    if count != needed:
        raise BadRequest(f"input {name!r} has {count} elements but shape {quote(list(shape))} needs {needed}")


# --- a whole request, as the model runs it --------------------------------------------------------------------------

def check_inputs(specs: Sequence[TensorSpec], tensors: Mapping[str, tuple[str, Sequence[int]]]) -> None:
    """The tensors ``{name: (datatype, shape)}`` a model is run on: known names, every input, the card's datatypes and
    shapes, one batch size."""
    for name in sorted(tensors):
        input_spec(specs, name)
    check_complete(specs, tensors)
    batch_sizes = set()
    for spec in specs:
        datatype, shape = tensors[spec.name]
        check_datatype(spec.name, datatype, spec)
        check_signature_shape(spec.name, shape, spec)
        if spec.shape and spec.shape[0] == -1:
            batch_sizes.add(shape[0])
    if len(batch_sizes) > 1:
        raise BadRequest(f"inputs disagree on the batch size: {sorted(batch_sizes)}; send one batch size")


# --- Lambda's synchronous payload limit -----------------------------------------------------------------------------

def payload_too_large(what: str, size: int, model: str | None = None, data_bucket: str | None = None) -> PayloadTooLarge:
    """The 413 for a request or response over Lambda's synchronous payload limit, naming the asynchronous path."""
    model = model or "<model>"
    bucket = data_bucket or os.environ.get(DATA_BUCKET) or "<data bucket>"
    return PayloadTooLarge(
        f"{what} is {size} bytes, over Lambda's {LAMBDA_SYNC_PAYLOAD_LIMIT} byte (6 MB) synchronous "
        "payload limit; send smaller batches or use the binary tensor encoding, or go asynchronous: put the "
        f"request (.json, .npy, .npz or .jsonl) at s3://{bucket}/inbox/{model}/<name> and read the result at "
        f"s3://{bucket}/outbox/{model}/<name>.json, or put it under s3://{bucket}/requests/{model}/ and send "
        '{"input_uri": "s3://..."} to the model\'s SQS queue or as an asynchronous invoke (see docs/events.md)'
    )


def check_result_size(results: Mapping[str, Any], model: str) -> None:
    """413 before encoding a synchronous answer that cannot fit: JSON needs >= 2 bytes per element, binary >= its
    itemsize, so nothing larger than the limit is built (``results``: numpy arrays by output name)."""
    at_least = sum(value.size * min(value.dtype.itemsize, 2) for value in results.values())
    if at_least > LAMBDA_SYNC_PAYLOAD_LIMIT:
        raise payload_too_large("the response", at_least, model)


def _names(specs: Sequence[TensorSpec]) -> list[str]:
    return [spec.name for spec in specs]
