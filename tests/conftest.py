"""Fixtures shared by the suites: fake AWS credentials and one exported digits model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    SAM_CLI_TELEMETRY="0",
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory) -> Path:
    """A model store holding digits/1, trained and exported through the real export pipeline."""
    from modelfn_export import export_model

    store = tmp_path_factory.mktemp("models")
    export_model("modelfn_infra.digits:build_model", "digits", version="1", out=str(store))
    return store
