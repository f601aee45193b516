"""SnapStart hooks: registered through snapshot-restore-py and run the way awslambdaric runs them."""

from __future__ import annotations

import numpy as np
import pytest
from awslambdaric import lambda_runtime_hooks_runner
from snapshot_restore_py import get_after_restore, get_before_snapshot

from modelfn_runtime import providers, snapstart
from modelfn_runtime.service import InferenceService
from modelfn_runtime.session import ModelSession

from .conftest import FEATURES, IDS


@pytest.fixture
def hooks():
    get_before_snapshot().clear()
    get_after_restore().clear()
    yield
    get_before_snapshot().clear()
    get_after_restore().clear()


def test_warm_before_snapshot_and_keep_a_fitting_session_after_restore(hooks, toy_dir, monkeypatch):
    model = ModelSession.load(toy_dir, preference="cpu", threads=1)
    service = InferenceService(model)
    runs = []
    original_run = model.run
    monkeypatch.setattr(model, "run", lambda feeds, outputs=None: runs.append(feeds) or original_run(feeds, outputs))
    assert snapstart.register(service)
    lambda_runtime_hooks_runner.run_before_snapshot()
    assert [sorted(feeds) for feeds in runs] == [["features", "ids"]]
    assert runs[0]["features"].shape == (1, 4) and runs[0]["ids"].dtype == np.int64
    monkeypatch.setattr(providers, "available_vcpus", lambda: 1)
    monkeypatch.setenv("MODELFN_EXECUTION_PROVIDER", "cpu")
    lambda_runtime_hooks_runner.run_after_restore()
    assert service.model is model, "a session that fits the sandbox is kept"


def test_after_restore_reopens_a_session_sized_for_another_sandbox(hooks, toy_dir, monkeypatch):
    model = ModelSession.load(toy_dir, preference="cpu", threads=1)
    service = InferenceService(model)
    expected = model.run({"features": FEATURES, "ids": IDS})
    snapstart.register(service)
    monkeypatch.setattr(providers, "available_vcpus", lambda: 3)
    monkeypatch.setenv("MODELFN_EXECUTION_PROVIDER", "cpu")
    lambda_runtime_hooks_runner.run_after_restore()
    assert service.model is not model and service.model.threads == 3 and service.model.source == toy_dir
    for name, value in service.model.run({"features": FEATURES, "ids": IDS}).items():
        np.testing.assert_allclose(value, expected[name])


def test_the_catch_all_registers_nothing(hooks):
    assert snapstart.register(InferenceService(model=None)) is False
    assert get_before_snapshot() == [] and get_after_restore() == []
