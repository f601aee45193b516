"""Where a function finds its model: in its own package, a local directory, or S3 (copied into /tmp).

``MODEL_URI`` is an ``s3://bucket/prefix/name/version/`` location or a directory (relative paths are
taken from the function package, ``LAMBDA_TASK_ROOT``). Unset, the model is expected in the package
at ``models/<MODEL_NAME>/<MODEL_VERSION>/``.

Example:
    >>> resolve_model_dir("s3://models-bucket/models/digits/1/")        # doctest: +SKIP
    PosixPath('/tmp/modelfn/models-bucket/models/digits/1')
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .modelcard import ARTIFACT_FILE, CARD_FILE

CACHE_ROOT = Path(os.environ.get("MODELFN_CACHE_DIR", "/tmp/modelfn"))


class ModelLoadError(RuntimeError):
    """The artifact cannot be served as described (missing file, checksum or signature mismatch)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_model_uri(name: str, version: str) -> str:
    return f"models/{name}/{version}"


def resolve_model_dir(uri: str) -> Path:
    """A local directory holding ``model.onnx`` and ``modelcard.json`` for ``uri``."""
    if uri.startswith("s3://"):
        return download_from_s3(uri)
    path = Path(uri)
    if not path.is_absolute():
        path = Path(os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())) / path
    return path


def download_from_s3(uri: str) -> Path:
    """Copy the card and the artifact into /tmp once, verifying the artifact's sha256 against the card."""
    import boto3  # only functions that load from S3 pay for importing boto3
    import botocore.exceptions

    bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    target = CACHE_ROOT / bucket / prefix
    target.mkdir(parents=True, exist_ok=True)
    s3 = boto3.client("s3")
    card_body = _get(s3, bucket, prefix + CARD_FILE)
    expected = json.loads(card_body)["artifact"]["sha256"]
    model_path = target / ARTIFACT_FILE
    if not (model_path.is_file() and sha256_file(model_path) == expected):
        partial = model_path.with_name(ARTIFACT_FILE + ".partial")
        # download_file streams to disk in parallel parts: no second copy of the model in memory
        try:
            s3.download_file(bucket, prefix + ARTIFACT_FILE, str(partial))
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise
            raise ModelLoadError(
                f"s3://{bucket}/{prefix}{ARTIFACT_FILE} does not exist; push the model with `modelfn push`"
            ) from None
        digest = sha256_file(partial)
        if digest != expected:
            partial.unlink()
            raise ModelLoadError(
                f"s3://{bucket}/{prefix}{ARTIFACT_FILE} has sha256 {digest} but its card records {expected}; "
                "push the model again with `modelfn push`"
            )
        partial.replace(model_path)
    _write_atomically(target / CARD_FILE, card_body)
    return target


def _get(s3, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise ModelLoadError(f"s3://{bucket}/{key} does not exist; push the model with `modelfn push`") from None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
