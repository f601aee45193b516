"""Shared, session-scoped models and exports so TensorFlow work is done once per test run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from . import models as export_models

# --- session fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sources_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sources")


@pytest.fixture(scope="session")
def digits(sources_dir: Path) -> dict[str, Any]:
    """The trained digits MLP, saved as digits.keras, plus x_test saved as x_test.npy."""
    model, (x_train, x_test, y_train, y_test) = export_models.build_digits_mlp()
    path = sources_dir / "digits.keras"
    model.save(path)
    samples = sources_dir / "x_test.npy"
    np.save(samples, x_test)
    return {"model": model, "path": path, "samples": samples, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="session")
def digits_export(digits: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """digits.keras exported (fp32, generated samples) as digits/1 in a store; ``(card, store)``."""
    from modelfn_export import export_model

    out = tmp_path_factory.mktemp("store-fp32")
    card = export_model(str(digits["path"]), "digits", out=out)
    return card, out


@pytest.fixture(scope="session")
def digits_quantized_export(digits: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """digits.keras exported with dynamic int8 quantization on x_test as digits/1; ``(card, store)``."""
    from modelfn_export import export_model

    out = tmp_path_factory.mktemp("store-int8")
    card = export_model(str(digits["path"]), "digits", out=out, quantize="int8", samples=digits["samples"])
    return card, out
