"""Upload an exported model version to S3.

``push_model("digits/3", bucket="b", prefix="models/")`` uploads ``model.onnx`` and then
``modelcard.json`` from ``<store>/digits/3/`` to ``s3://b/models/digits/3/``. Each object carries
the sha256 of its own bytes as object metadata (``x-amz-meta-sha256``); the card also carries the
artifact's (``artifact-sha256``). Versions are immutable:

* nothing there yet -> both files are uploaded (``status == "uploaded"``);
* the same ``model.onnx`` (same sha256) is already there -> nothing is uploaded
  (``status == "unchanged"``; a card missing from an interrupted earlier push is completed,
  ``status == "completed"``);
* a different ``model.onnx`` is there -> :class:`ExportError` (exit 1), nothing is uploaded.

Both objects are written with SSE-KMS (``ServerSideEncryption=aws:kms``): with ``kms_key_id`` (a key ARN,
id or alias, e.g. the stack's ``alias/<stack>-models``) under that key, otherwise under the bucket's default
KMS key (S3's ``aws/s3`` key when the bucket names none).

A non-empty ``prefix`` without a trailing ``/`` gets one. boto3 is used with its usual configuration
(``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ...).

Example:
    >>> result = push_model("digits", bucket="my-models", prefix="models/")   # doctest: +SKIP
    >>> result.status, result.uri                                              # doctest: +SKIP
    ('uploaded', 's3://my-models/models/digits/3/')
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Literal

from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE, ModelCard

from . import store as store_mod
from .defaults import DEFAULT_STORE
from .errors import FAILED, ExportError, one_line

PushStatus = Literal["uploaded", "unchanged", "completed"]


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_model` did."""

    name: str
    version: str
    bucket: str
    prefix: str
    sha256: str
    status: PushStatus
    uploaded: tuple[str, ...]
    """Object keys written by this push (empty when unchanged)."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}{self.name}/{self.version}/"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"name"`` -> ``("name", None)``; ``"name/3"`` -> ``("name", "3")``; validated."""
    name, _, version = ref.partition("/")
    store_mod.validate_name(name)
    return name, (store_mod.validate_version(version) if version else None)


def normalize_prefix(prefix: str | None) -> str:
    """``""`` stays empty; otherwise no leading ``/`` and exactly one trailing ``/``."""
    prefix = (prefix or "").lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def push_model(
    name: str,
    version: str | int | None = None,
    *,
    bucket: str,
    prefix: str = "",
    store: str | os.PathLike[str] = DEFAULT_STORE,
    s3_client: Any = None,
    kms_key_id: str | None = None,
) -> PushResult:
    """Upload ``<store>/<name>/<version>/`` to ``s3://<bucket>/<prefix><name>/<version>/``.

    Args:
        name: model name, or ``"name/version"``.
        version: version to push; default: the latest in the store.
        bucket: the S3 bucket.
        prefix: key prefix (``"models/"``); a trailing ``/`` is added when missing.
        store: the local model store directory.
        s3_client: a boto3 S3 client (default: ``boto3.client("s3")``).
        kms_key_id: KMS key for SSE-KMS; default: the bucket's default KMS key.

    Raises:
        ExportError: invalid name/version, nothing to push, a corrupted local version, a different
            artifact already at that version, or an S3/credentials problem.
    """
    if "/" in name:
        name, ref_version = parse_ref(name)
        version = version if version is not None else ref_version
    store_mod.validate_name(name)
    version = store_mod.validate_version(version) if version is not None else store_mod.latest_version(store, name)
    directory = store_mod.version_dir(store, name, version)
    prefix = normalize_prefix(prefix)
    if not bucket:
        raise ExportError("no bucket given", "pass --bucket NAME")

    from modelfn_runtime.digest import sha256_file

    artifact = directory / ARTIFACT_FILE
    card_path = directory / CARD_FILE
    try:
        card = ModelCard.read(card_path)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"cannot read '{card_path}': {one_line(exc)}", "re-export this version") from None
    if card.name != name or card.version != version:
        raise ExportError(
            f"'{card_path}' describes {card.name}/{card.version}, not {name}/{version}",
            "re-export this version instead of copying directories by hand",
        )
    sha = sha256_file(artifact)
    if sha != card.artifact.sha256:
        raise ExportError(
            f"'{artifact}' does not match the sha256 in its card (the file was changed after export)",
            "re-export the model as a new version",
        )
    card_bytes = card_path.read_bytes()
    card_sha = hashlib.sha256(card_bytes).hexdigest()

    client = s3_client if s3_client is not None else _client()
    base = f"{prefix}{name}/{version}/"
    artifact_key, card_key = base + ARTIFACT_FILE, base + CARD_FILE

    def result(status: PushStatus, uploaded: tuple[str, ...]) -> PushResult:
        return PushResult(name, version, bucket, prefix, sha, status, uploaded)

    with _s3_errors(bucket):
        remote = _head(client, bucket, artifact_key)
        if remote is not None:
            remote_sha = (remote.get("Metadata") or {}).get("sha256") or _remote_sha256(client, bucket, artifact_key)
            if remote_sha != sha:
                raise ExportError(
                    f"s3://{bucket}/{artifact_key} already holds a different model.onnx "
                    f"(sha256 {remote_sha[:12]}…, local {sha[:12]}…)",
                    "versions are immutable: export a new version and push that",
                    exit_code=FAILED,
                )
            if _head(client, bucket, card_key) is not None:
                return result("unchanged", ())
            _put_card(client, bucket, card_key, card_bytes, card_sha, sha, kms_key_id)
            return result("completed", (card_key,))
        client.upload_file(
            os.fspath(artifact),
            bucket,
            artifact_key,
            ExtraArgs={"Metadata": {"sha256": sha}, "ContentType": "application/octet-stream", **encryption(kms_key_id)},
        )
        _put_card(client, bucket, card_key, card_bytes, card_sha, sha, kms_key_id)
    return result("uploaded", (artifact_key, card_key))


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def encryption(kms_key_id: str | None) -> dict[str, str]:
    """S3 request arguments for SSE-KMS, under ``kms_key_id`` or the bucket's default KMS key."""
    return {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": kms_key_id} if kms_key_id else {})}


def _put_card(client: Any, bucket: str, key: str, body: bytes, sha: str, artifact_sha: str, kms_key_id: str | None) -> None:
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        Metadata={"sha256": sha, "artifact-sha256": artifact_sha},
        **encryption(kms_key_id),
    )


def _head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    from modelfn_runtime.aws import classify_s3_error

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if classify_s3_error(exc).kind == "missing":
            return None
        raise


def _remote_sha256(client: Any, bucket: str, key: str) -> str:
    from modelfn_runtime.digest import sha256_stream

    return sha256_stream(client.get_object(Bucket=bucket, Key=key)["Body"])


class _s3_errors:
    """Turn boto errors into one-line ExportErrors."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, ExportError):
            return False
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

        from modelfn_runtime.aws import classify_s3_error

        if not isinstance(exc, (ClientError, BotoCoreError, Boto3Error)):
            return False
        failure, text = classify_s3_error(exc), one_line(exc)
        if isinstance(exc, NoRegionError):
            raise ExportError("no AWS region configured", "set AWS_REGION or pass a region in your profile", exit_code=FAILED) from None
        if failure.kind == "credentials":
            raise ExportError(
                "no AWS credentials found",
                "configure credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
                exit_code=FAILED,
            ) from None
        if failure.kind == "no_bucket":
            raise ExportError(f"bucket '{self.bucket}' does not exist", "create it or pass the right --bucket", exit_code=FAILED) from None
        if failure.kind == "denied":
            raise ExportError(
                f"access to bucket '{self.bucket}' was denied: {text[:200]}",
                "use credentials allowed s3:GetObject, s3:PutObject and s3:ListBucket on it",
                exit_code=FAILED,
            ) from None
        raise ExportError(f"S3 request failed: {text[:300]}", "check --bucket, your credentials and network (AWS_ENDPOINT_URL)", exit_code=FAILED) from None

