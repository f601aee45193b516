"""Init faults fail fast, bounded in time, with one line naming the object and the fix (issue 9, section 3)."""

from __future__ import annotations

import json
import socket
import threading
import time

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from modelfn_runtime import artifacts
from modelfn_runtime.artifacts import ModelLoadError, cache_dir, download_from_s3
from modelfn_runtime.session import ModelSession

from .toy_model import write_toy_model


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setattr(artifacts, "CACHE_ROOT", tmp_path / "cache")
    return tmp_path / "cache"


@pytest.fixture
def aws(monkeypatch, cache):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        yield s3


def test_missing_bucket_names_the_bucket_and_the_fix(aws):
    with pytest.raises(ModelLoadError, match="bucket 'absent' of s3://absent/m/1/modelcard.json does not exist; create it"):
        download_from_s3("s3://absent/m/1/")


def test_card_that_is_not_json_is_refused(aws):
    aws.put_object(Bucket="models", Key="m/1/modelcard.json", Body=b"{broken")
    with pytest.raises(ModelLoadError, match="s3://models/m/1/modelcard.json is not a model card"):
        download_from_s3("s3://models/m/1/")


def test_bad_card_json_on_disk_is_a_load_error(tmp_path):
    model_dir = write_toy_model(tmp_path / "toy" / "1")
    (model_dir / "modelcard.json").write_text('{"name": "toy"}')
    with pytest.raises(ModelLoadError, match="is not a valid model card"):
        ModelSession.load(model_dir)


def test_access_denied_names_the_permission(cache, monkeypatch):
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    stubber.activate()
    monkeypatch.setattr(artifacts, "s3_client", lambda: client)
    with pytest.raises(ModelLoadError, match=r"access to s3://models/m/1/modelcard.json was denied \(AccessDenied\); push the model there if it is missing, or grant the function s3:GetObject"):
        download_from_s3("s3://models/m/1/")


@pytest.mark.parametrize("prefix", ["models/../../etc/", "../x/", "a/../../../b/"])
def test_cache_path_cannot_escape_the_cache(cache, prefix):
    with pytest.raises(ModelLoadError, match="would be cached outside"):
        cache_dir("models", prefix)
    with pytest.raises(ModelLoadError, match="would be cached outside"):
        cache_dir("..", "x/")
    assert cache_dir("models", "a/./b/").is_relative_to(cache.resolve())


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a hanging S3."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for connection in held:
        connection.close()
    server.close()


def test_hanging_s3_fails_within_the_bounded_timeouts(cache, monkeypatch, silent_server):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", silent_server)
    monkeypatch.setattr(artifacts, "S3_READ_TIMEOUT_S", 0.5)
    monkeypatch.setattr(artifacts, "S3_MAX_ATTEMPTS", 2)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"S3 did not answer for s3://models/m/1/modelcard.json within 0.5 s \(2 attempts\)"):
        download_from_s3("s3://models/m/1/")
    assert time.monotonic() - started < 5


def test_unreachable_s3_fails_fast(cache, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(artifacts, "S3_MAX_ATTEMPTS", 2)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="S3 is unreachable for s3://models/m/1/modelcard.json"):
        download_from_s3("s3://models/m/1/")
    assert time.monotonic() - started < 5


def test_names_and_versions_are_matched_in_full():
    from modelfn_export.errors import ExportError
    from modelfn_export.store import validate_name, validate_version
    from modelfn_infra.catalog import CatalogError, ModelEntry

    for bad in ("digits\n", "digits\n\n"):
        with pytest.raises(ExportError):
            validate_name(bad)
        with pytest.raises(CatalogError, match="name must match"):
            ModelEntry(bad, "1").validate()
    with pytest.raises(ExportError):
        validate_version("1\n")
    with pytest.raises(CatalogError, match="version must be a positive integer"):
        ModelEntry("digits", "1\n").validate()
    with pytest.raises(CatalogError, match="version must be a positive integer"):
        ModelEntry("digits", "\u0661").validate()  # ARABIC-INDIC DIGIT ONE: isdigit() said yes
    assert json.dumps(validate_name("digits")) == '"digits"'
