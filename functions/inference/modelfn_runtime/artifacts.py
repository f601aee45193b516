"""Where a function finds its model: in its own package, a local directory, or S3 (copied into /tmp).

``MODEL_URI`` is an ``s3://bucket/prefix/name/version/`` location or a directory (relative paths are
taken from the function package, ``LAMBDA_TASK_ROOT``). Unset, the model is expected in the package
at ``models/<MODEL_NAME>/<MODEL_VERSION>/``.

A model downloaded from S3 is hashed once, right after the download; ``ModelFiles.sha256`` carries that digest to
``ModelSession.load``, which then compares it with the card instead of hashing the file again.

The cache in /tmp is shared by every process of an execution environment (Lambda Managed Instances run each
concurrent request of a Python function in its own process, all of them loading the same model at init): one
process downloads while holding an exclusive ``fcntl.flock`` on the model directory's ``.lock``, into a temporary file
of its own that ``os.replace`` puts in place only once verified; the others wait on the lock and then reuse the
verified file (hashed against the card, never trusted blindly). A process killed mid-download leaves only its
temporary file, removed by the next writer; its lock goes with it.

Example:
    >>> locate("s3://models-bucket/models/digits/1/")        # doctest: +SKIP
    ModelFiles(directory=PosixPath('/tmp/modelfn/models-bucket/models/digits/1'), sha256='9f2c...')
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import environment as names
from .aws import classify_s3_error
from .digest import sha256_file
from .modelcard import ARTIFACT_FILE, CARD_FILE
from .observability import logger

CACHE_ROOT = Path(os.environ.get(names.CACHE_DIR, "/tmp/modelfn"))


class ModelLoadError(RuntimeError):
    """The artifact cannot be served as described (missing file, checksum or signature mismatch)."""


def default_model_uri(name: str, version: str) -> str:
    return f"models/{name}/{version}"


@dataclass(frozen=True)
class ModelFiles:
    """A directory holding ``model.onnx`` and ``modelcard.json``, and the artifact's sha256 when it was computed on the
    way there (a download from S3; None for a directory on disk, which ``ModelSession.load`` hashes itself)."""

    directory: Path
    sha256: str | None = None


def locate(uri: str) -> ModelFiles:
    """The model files for ``uri``: downloaded from S3 (and verified) into /tmp, or a directory on disk."""
    if uri.startswith("s3://"):
        return download_from_s3(uri)
    return ModelFiles(local_dir(uri))


def local_dir(uri: str) -> Path:
    """A model directory on disk; a relative one is taken from the function package (``LAMBDA_TASK_ROOT``)."""
    path = Path(uri)
    return path if path.is_absolute() else Path(os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())) / path


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b/")``: the key prefix of a model directory, ending in ``/`` (or empty)."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix.rstrip("/") + "/" if prefix else ""


S3_CONNECT_TIMEOUT_S = float(os.environ.get(names.S3_CONNECT_TIMEOUT_S, "3"))
S3_READ_TIMEOUT_S = float(os.environ.get(names.S3_READ_TIMEOUT_S, "10"))
S3_MAX_ATTEMPTS = int(os.environ.get(names.S3_MAX_ATTEMPTS, "3"))
"""An unreachable or hanging S3 fails init within about attempts x (connect + read) seconds, not Lambda's timeout."""


def cache_dir(bucket: str, prefix: str, root: Path | None = None) -> Path:
    """Where an S3 model is cached: under ``root`` always, whatever ``..`` or ``/`` the prefix holds.

    Example:
        >>> cache_dir("b", "models/../../etc/", Path("/tmp/modelfn"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        modelfn_runtime.artifacts.ModelLoadError: s3://b/models/../../etc/ would be cached outside /tmp/modelfn; ...
    """
    root = (root or CACHE_ROOT).resolve()
    target = (root / bucket / prefix.lstrip("/")).resolve()
    if not bucket or "/" in bucket or bucket in (".", "..") or not target.is_relative_to(root / bucket):
        raise ModelLoadError(
            f"s3://{bucket}/{prefix} would be cached outside {root}; set MODEL_URI to s3://bucket/prefix/name/version/ "
            "without '..' segments"
        )
    return target


def download_from_s3(uri: str) -> ModelFiles:
    """Copy the card and the artifact into /tmp once, verifying the artifact's sha256 against the card (the one hash of
    a cold start: a copy cached in /tmp, by this process or another of the environment, is hashed instead of
    downloaded again).

    Every failure is a ``ModelLoadError`` whose message names the URI and the fix: a missing bucket or object,
    AccessDenied, an unreachable or hanging endpoint (bounded timeouts and retries), a card that is not JSON,
    a sha256 mismatch.
    """
    import botocore.exceptions

    bucket, prefix = split_s3_uri(uri)
    target = cache_dir(bucket, prefix)
    target.mkdir(parents=True, exist_ok=True)
    s3 = s3_client()
    key = prefix + CARD_FILE
    try:
        card_body = _get(s3, bucket, key)
        expected = _recorded_sha256(card_body, f"s3://{bucket}/{prefix}{CARD_FILE}")
        key = prefix + ARTIFACT_FILE
        with cache_lock(target):  # one writer per model directory; the environment's other processes wait here
            model_path = target / ARTIFACT_FILE
            if model_path.is_file() and sha256_file(model_path) == expected:
                logger.info("model reused from the shared cache", uri=uri)
            else:  # not cached, or changed: download
                _download(s3, bucket, key, model_path, expected)
                logger.info("model downloaded from S3", uri=uri, bytes=model_path.stat().st_size)
            _write_atomically(target / CARD_FILE, card_body)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise ModelLoadError(_s3_failure(error, bucket, key)) from None
    return ModelFiles(target, expected)


@contextlib.contextmanager
def cache_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory`` among processes (``flock``: released when its holder exits, however)."""
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(s3, bucket: str, key: str, model_path: Path, expected: str) -> None:
    """Download into a temporary file of this process, verify it, then put it in place atomically (lock held)."""
    for stale in model_path.parent.glob("*.partial"):  # a writer killed mid-download; no writer runs now
        stale.unlink(missing_ok=True)
    handle, name = tempfile.mkstemp(dir=model_path.parent, prefix=f"{ARTIFACT_FILE}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        # download_file streams to disk in parallel parts: no second copy of the model in memory
        s3.download_file(bucket, key, str(partial))
        digest = sha256_file(partial)
        if digest != expected:
            raise ModelLoadError(
                f"s3://{bucket}/{key} has sha256 {digest} but its card records {expected}; "
                "push the model again with `modelfn push`"
            )
        os.replace(partial, model_path)
    finally:
        partial.unlink(missing_ok=True)


def s3_client():
    """A boto3 S3 client whose connect/read timeouts and retries are bounded (see ``S3_*`` above); boto3 is
    imported only by functions that load from S3."""
    from .aws import bounded_client

    return bounded_client("s3", connect_timeout=S3_CONNECT_TIMEOUT_S, read_timeout=S3_READ_TIMEOUT_S,
                          max_attempts=S3_MAX_ATTEMPTS)


def _s3_failure(error: Exception, bucket: str, key: str) -> str:
    """One line naming the object, what S3 said, and the fix."""
    uri = f"s3://{bucket}/{key}"
    failure = classify_s3_error(error)
    if failure.kind == "no_bucket":
        return f"bucket {bucket!r} of {uri} does not exist; create it or fix the ModelBucket parameter / MODEL_URI"
    if failure.kind == "missing":
        return f"{uri} does not exist; push the model with `modelfn push`"
    if failure.kind == "denied":
        return (
            f"access to {uri} was denied ({failure.code}); push the model there if it is missing, or grant the function "
            "s3:GetObject on its model prefix and kms:Decrypt on the model key"
        )
    if failure.kind == "unreachable":
        return f"S3 is unreachable for {uri} ({failure.code}); check the network/VPC endpoint and AWS_ENDPOINT_URL_S3"
    if failure.kind == "timeout":
        return f"S3 did not answer for {uri} within {S3_READ_TIMEOUT_S:g} s ({S3_MAX_ATTEMPTS} attempts); retry later or raise MODELFN_S3_READ_TIMEOUT_S"
    return f"reading {uri} failed: {str(error)[:200]}; check MODEL_URI and the function's permissions"


def _recorded_sha256(card_body: bytes, where: str) -> str:
    try:
        digest = json.loads(card_body)["artifact"]["sha256"]
    except (ValueError, KeyError, TypeError):
        raise ModelLoadError(f"{where} is not a model card (no artifact.sha256); push the model again with `modelfn push`") from None
    if not isinstance(digest, str):
        raise ModelLoadError(f"{where} records a non-string artifact.sha256; push the model again with `modelfn push`")
    return digest


def _get(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, never half-written: a temporary file of this process, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as partial:
            partial.write(data)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
