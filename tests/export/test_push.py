"""``push`` to S3 (moto): layout, sha256 metadata, idempotence, and immutability of versions."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfn_export import ExportError, push_model

BUCKET = "modelfn-test-models"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_push_uploads_with_sha256_metadata(s3: Any, digits_export: tuple[Any, Path]) -> None:
    card, store = digits_export
    result = push_model("digits/1", bucket=BUCKET, prefix="models/", store=store)
    assert result.status == "uploaded" and result.uri == f"s3://{BUCKET}/models/digits/1/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["models/digits/1/model.onnx", "models/digits/1/modelcard.json"]

    artifact = s3.get_object(Bucket=BUCKET, Key="models/digits/1/model.onnx")
    body = artifact["Body"].read()
    assert body == (store / "digits" / "1" / "model.onnx").read_bytes()
    assert artifact["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest() == card.artifact.sha256
    card_obj = s3.get_object(Bucket=BUCKET, Key="models/digits/1/modelcard.json")
    card_body = card_obj["Body"].read()
    assert card_obj["Metadata"]["sha256"] == hashlib.sha256(card_body).hexdigest()
    assert card_obj["Metadata"]["artifact-sha256"] == card.artifact.sha256
    assert card_obj["ContentType"] == "application/json"

    again = push_model("digits", bucket=BUCKET, prefix="models", store=store)  # latest; prefix gets its '/'
    assert again.status == "unchanged" and again.uploaded == ()


def test_push_refuses_a_different_artifact_at_the_same_version(
    s3: Any, digits_export: tuple[Any, Path], digits_quantized_export: tuple[Any, Path]
) -> None:
    _, fp32_store = digits_export
    _, int8_store = digits_quantized_export
    push_model("digits", 1, bucket=BUCKET, store=fp32_store)
    before = s3.get_object(Bucket=BUCKET, Key="digits/1/model.onnx")["Body"].read()
    with pytest.raises(ExportError) as info:
        push_model("digits", 1, bucket=BUCKET, store=int8_store)
    message = str(info.value)
    assert message.startswith(f"s3://{BUCKET}/digits/1/model.onnx already holds a different model.onnx")
    assert message.endswith("— versions are immutable: export a new version and push that")
    assert info.value.exit_code == 1
    assert s3.get_object(Bucket=BUCKET, Key="digits/1/model.onnx")["Body"].read() == before


def test_push_completes_an_interrupted_push(s3: Any, digits_export: tuple[Any, Path]) -> None:
    _, store = digits_export
    push_model("digits", bucket=BUCKET, store=store)
    s3.delete_object(Bucket=BUCKET, Key="digits/1/modelcard.json")
    result = push_model("digits", bucket=BUCKET, store=store)
    assert result.status == "completed" and result.uploaded == ("digits/1/modelcard.json",)


def test_push_cli(s3: Any, digits_export: tuple[Any, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from modelfn_export.cli import main

    _, store = digits_export
    assert main(["push", "digits", "--bucket", BUCKET, "--prefix", "p/", "--store", str(store)]) == 0
    assert capsys.readouterr().out.startswith(f"uploaded digits/1 to s3://{BUCKET}/p/digits/1/")
    assert main(["push", "digits/1", "--bucket", BUCKET, "--prefix", "p/", "--store", str(store)]) == 0
    assert capsys.readouterr().out.startswith(f"unchanged: s3://{BUCKET}/p/digits/1/ already holds digits/1")

    assert main(["push", "digits/9", "--bucket", BUCKET, "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "digits/9' does not hold model.onnx and modelcard.json" in err
    assert err.count("\n") == 1

    assert main(["push", "digits", "--bucket", "no-such-bucket", "--store", str(store)]) == 1
    assert capsys.readouterr().err == "error: bucket 'no-such-bucket' does not exist — create it or pass the right --bucket\n"


def test_push_refuses_a_modified_local_artifact(s3: Any, digits_export: tuple[Any, Path], tmp_path: Path) -> None:
    _, store = digits_export
    shutil.copytree(store / "digits", tmp_path / "digits")
    with open(tmp_path / "digits" / "1" / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ExportError, match=r"does not match the sha256 in its card"):
        push_model("digits", bucket=BUCKET, store=tmp_path)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_push_needs_an_exported_model(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"model 'digits' has no versions in store"):
        push_model("digits", bucket=BUCKET, store=tmp_path)
    with pytest.raises(ExportError, match=r"model name 'Digits' is invalid"):
        push_model("Digits/1", bucket=BUCKET, store=tmp_path)


def test_push_encrypts_with_sse_kms(s3: Any, digits_export: tuple[Any, Path]) -> None:
    """Model protection: both objects are stored SSE-KMS, under the given key when one is named."""
    import boto3

    _, store = digits_export
    push_model("digits/1", bucket=BUCKET, prefix="models/", store=store)
    for name in ("model.onnx", "modelcard.json"):
        assert s3.head_object(Bucket=BUCKET, Key=f"models/digits/1/{name}")["ServerSideEncryption"] == "aws:kms"
    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    push_model("digits/1", bucket=BUCKET, prefix="keyed/", store=store, kms_key_id=key)
    head = s3.head_object(Bucket=BUCKET, Key="keyed/digits/1/model.onnx")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
