"""Input objects of event-triggered work, decoded into requests in bounded chunks.

=========  ======================================================  ==================================
suffix     content                                                 becomes
=========  ======================================================  ==================================
``.json``  one Open Inference Protocol request (as POSTed to        one ``POST /v2/models/M/infer``
           ``/v2/models/M/infer``)
``.npy``   one array, the model's only input, rows = batch          binary OIP requests, ``chunk`` rows
``.npz``   one array per input name (same number of rows)           binary OIP requests, ``chunk`` rows
``.jsonl`` one TF Serving instance per line                         ``:predict`` requests, ``chunk`` lines
=========  ======================================================  ==================================

A chunk holds at most ``MODELFN_CHUNK_ROWS`` rows and about ``MODELFN_CHUNK_BYTES`` bytes, so memory
stays bounded whatever the object's size (``.npy`` is memory-mapped from /tmp; ``.jsonl`` is streamed).
Objects over ``MODELFN_MAX_OBJECT_BYTES`` and unreadable or malformed objects become refused
envelopes: the client's mistake is answered (and metered) as a 4xx, never a crash. Transient S3
failures raise ``RetryableJobError``.

Example:
    >>> job = Job(model="m", source="inline", result_name="x", idempotency_key="k", trigger="sqs",
    ...           payload={"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]})
    >>> [e.request.path for e in envelopes(job, card=None)]
    ['/v2/models/m/infer']
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .. import aws
from ..envelope import Envelope
from ..errors import BadRequest, ModelfnError, NotFound, PayloadTooLarge, UnsupportedMediaType
from ..http import Headers, HttpRequest
from ..modelcard import ModelCard
from ..protocols.oip_routes import HEADER_LENGTH
from ..tensors import datatype_of, to_binary
from .job import FORMATS, Job, RetryableJobError, S3Object, Settings


def envelopes(job: Job, card: ModelCard | None, settings: Settings | None = None) -> Iterator[Envelope]:
    """The requests ``job`` carries, lazily; at most one refused envelope when the input is unusable."""
    settings = settings or Settings.from_env()
    if job.refusal:
        yield _refused(job, BadRequest(job.refusal))
        return
    if job.payload is not None:
        yield Envelope(_request(job, job.infer_path, Headers({"content-type": "application/json"}), parsed=job.payload))
        return
    assert job.object is not None
    suffix = Path(job.object.key).suffix.lower()
    if suffix not in FORMATS:
        yield _refused(job, UnsupportedMediaType(
            f"{job.object.uri[:120]} has suffix {suffix or '(none)'!r}; input objects must be "
            f"{', '.join(FORMATS)} (see docs/events.md)"))
        return
    try:
        yield from READERS[suffix](job, card, settings)
    except ModelfnError as error:
        yield _refused(job, error)


def _read_json(job: Job, card: ModelCard | None, settings: Settings) -> Iterator[Envelope]:
    body = _get_bytes(job.object, settings.max_json_bytes, "a .json request")
    yield Envelope(_request(job, job.infer_path, Headers({"content-type": "application/json"}), body=body))


def _read_npy(job: Job, card: ModelCard | None, settings: Settings) -> Iterator[Envelope]:
    names = _input_names(card)
    if len(names) != 1:
        raise BadRequest(f"a .npy object holds one array but model {job.model!r} has inputs {names}; "
                         "put one array per input name in a .npz object instead")
    with _downloaded(job.object, settings) as path:
        try:
            array = np.load(path, mmap_mode="r" if isinstance(path, str) else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise BadRequest(f"{job.object.uri[:120]} is not a valid .npy file ({str(error)[:80]}); save it with numpy.save") from None
        yield from _array_chunks(job, {names[0]: array}, settings)


def _read_npz(job: Job, card: ModelCard | None, settings: Settings) -> Iterator[Envelope]:
    names = _input_names(card)
    with _downloaded(job.object, settings) as path:
        try:
            archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise BadRequest(f"{job.object.uri[:120]} is not a valid .npz file ({str(error)[:80]}); save it with numpy.savez") from None
        with archive:
            keys = list(archive.files)
            if keys == ["arr_0"] and len(names) == 1:
                keys_to_names = {"arr_0": names[0]}
            elif sorted(keys) == sorted(names):
                keys_to_names = {name: name for name in names}
            else:
                raise BadRequest(f".npz arrays {keys[:8]} must be named after the model's inputs {names}; "
                                 "save with numpy.savez(path, **{input_name: array})")
            try:
                arrays = {name: archive[key] for key, name in keys_to_names.items()}
            except ValueError as error:
                raise BadRequest(f"{job.object.uri[:120]} holds an array numpy cannot load ({str(error)[:80]})") from None
        yield from _array_chunks(job, arrays, settings)


def _read_jsonl(job: Job, card: ModelCard | None, settings: Settings) -> Iterator[Envelope]:
    body = _get_stream(job.object, settings)
    rows: list[Any] = []
    size = seen = 0
    for number, line in enumerate(body.iter_lines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise BadRequest(f"line {number} of {job.object.uri[:120]} is not valid JSON; write one TF Serving instance per line") from None
        size += len(line)
        seen += 1
        if len(rows) >= settings.max_rows or size >= settings.chunk_bytes:
            yield _predict(job, rows)
            rows, size = [], 0
    if rows:
        yield _predict(job, rows)
    if not seen:
        raise BadRequest(f"{job.object.uri[:120]} holds no instances; write one TF Serving instance per line")


READERS = {".json": _read_json, ".npy": _read_npy, ".npz": _read_npz, ".jsonl": _read_jsonl}


def _array_chunks(job: Job, arrays: dict[str, np.ndarray], settings: Settings) -> Iterator[Envelope]:
    rows = {name: (array.shape[0] if array.ndim else -1) for name, array in arrays.items()}
    if any(count < 0 for count in rows.values()):
        raise BadRequest(f"every array in {job.object.uri[:120]} needs a batch dimension (shape [rows, ...]); got a scalar")
    if len(set(rows.values())) != 1:
        raise BadRequest(f"arrays in {job.object.uri[:120]} disagree on the number of rows: {rows}")
    total = next(iter(rows.values()))
    if total == 0:
        raise BadRequest(f"{job.object.uri[:120]} holds 0 rows; nothing to infer")
    row_bytes = sum(max(1, array[:1].nbytes) for array in arrays.values())
    step = max(1, min(settings.max_rows, settings.chunk_bytes // row_bytes))
    for start in range(0, total, step):
        yield _binary_infer(job, {name: np.ascontiguousarray(array[start : start + step]) for name, array in arrays.items()})


def _binary_infer(job: Job, tensors: dict[str, np.ndarray]) -> Envelope:
    try:
        chunks = [to_binary(array) for array in tensors.values()]
        specs = [
            {"name": name, "shape": list(array.shape), "datatype": datatype_of(array), "parameters": {"binary_data_size": len(raw)}}
            for (name, array), raw in zip(tensors.items(), chunks)
        ]
    except TypeError as error:
        raise BadRequest(f"{job.object.uri[:120]}: {error}; save numeric arrays") from None
    header = json.dumps({"inputs": specs, "parameters": {"binary_data_output": False}}, separators=(",", ":")).encode()
    headers = Headers({"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))})
    return Envelope(_request(job, job.infer_path, headers, body=header + b"".join(chunks)))


def _predict(job: Job, rows: list[Any]) -> Envelope:
    body = json.dumps({"instances": rows}, separators=(",", ":")).encode()
    return Envelope(_request(job, job.predict_path, Headers({"content-type": "application/json"}), body=body))


def _request(job: Job, path: str, headers: Headers, *, body: bytes = b"", parsed: Any = None) -> HttpRequest:
    return HttpRequest("POST", path, headers, body=body, request_id=job.request_id, trigger=job.trigger,
                       tenant=job.tenant, parsed=parsed)


def _refused(job: Job, error: ModelfnError) -> Envelope:
    path = job.infer_path if job.model else "/"
    return Envelope.refused(error, trigger=job.trigger, request_id=job.request_id, path=path, tenant=job.tenant)


def _input_names(card: ModelCard | None) -> list[str]:
    return [spec.name for spec in card.inputs] if card else []


def _checked_size(obj: S3Object, limit: int, what: str) -> int:
    head = _call(obj, "head_object", Bucket=obj.bucket, Key=obj.key)
    size = int(head.get("ContentLength", 0))
    if size > limit:
        raise PayloadTooLarge(f"{obj.uri[:120]} is {size} bytes, over this function's {limit} byte limit for {what}; "
                              "split it into smaller objects (or raise MODELFN_MAX_OBJECT_BYTES with the function's memory)")
    return size


def _get_bytes(obj: S3Object, limit: int, what: str) -> bytes:
    _checked_size(obj, limit, what)
    return _call(obj, "get_object", Bucket=obj.bucket, Key=obj.key)["Body"].read()


def _get_stream(obj: S3Object, settings: Settings) -> Any:
    _checked_size(obj, settings.max_object_bytes, "an input object")
    return _call(obj, "get_object", Bucket=obj.bucket, Key=obj.key)["Body"]


@contextmanager
def _downloaded(obj: S3Object, settings: Settings) -> Iterator[Any]:
    """The object as something ``numpy.load`` reads: in memory when it fits one chunk, else a private
    temporary file under /tmp (streamed there in parts, memory-mapped by the reader), removed afterwards."""
    size = _checked_size(obj, settings.max_object_bytes, "an input object")
    if size <= settings.chunk_bytes:
        yield io.BytesIO(_call(obj, "get_object", Bucket=obj.bucket, Key=obj.key)["Body"].read())
        return
    handle, path = tempfile.mkstemp(prefix="modelfn-input-", suffix=Path(obj.key).suffix)
    os.close(handle)
    try:
        _call(obj, "download_file", obj.bucket, obj.key, path)
        yield path
    finally:
        os.unlink(path)


def _call(obj: S3Object, operation: str, *args: Any, **kwargs: Any) -> Any:
    """One S3 call; permanent errors become the client's 4xx, transient ones a retry."""
    try:
        return getattr(aws.client("s3"), operation)(*args, **kwargs)
    except Exception as error:
        failure = aws.classify_s3_error(error)
        if failure.kind in ("missing", "no_bucket"):
            raise NotFound(f"{obj.uri[:120]} does not exist (it may have been deleted after the event); put it again") from None
        if failure.kind == "denied":
            raise NotFound(f"{obj.uri[:120]} does not exist or this function may not read it; inputs must be under the "
                           "model's inbox/<model>/ or requests/<model>/ prefix of the data bucket") from None
        if failure.kind == "invalid":  # the object itself (e.g. archived): the client's to fix
            raise BadRequest(f"{obj.uri[:120]} cannot be read ({failure.code})") from None
        # transient, or this function's own configuration (credentials): not the client's fault, so retried
        raise RetryableJobError(f"reading {obj.uri[:120]} failed ({failure.code}): {str(error)[:120]}") from error
