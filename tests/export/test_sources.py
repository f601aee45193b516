"""SavedModel and ``module:function`` sources, and invalid sources."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from modelfn_export import ExportError, export_model
from modelfn_export.sources import classify_source

from . import models as export_models
from .export_checks import check_version_dir


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keras 3 ``model.export()`` of the two-input/two-output model (signatures serve, serving_default)."""
    path = tmp_path_factory.mktemp("saved") / "two_io"
    export_models.build_two_io().export(str(path), verbose=False)
    return path


@pytest.mark.parametrize("signature", ["serving_default", "serve"])
def test_saved_model_source(saved_model_dir: Path, tmp_path: Path, signature: str) -> None:
    card = export_model(str(saved_model_dir), "two-saved", out=tmp_path, signature=signature)
    check_version_dir(tmp_path / "two-saved" / "1")
    assert card.source["kind"] == "saved_model"
    assert card.source["signature"] == signature
    assert {(s.name, s.datatype, tuple(s.shape)) for s in card.inputs} == {
        ("features", "FP32", (-1, 8)),
        ("extra", "FP32", (-1, 3)),
    }
    # Keras' export names the signature outputs output_0, output_1 (the signature's output keys)
    assert sorted(s.name for s in card.outputs) == ["output_0", "output_1"]
    assert card.parity["max_abs_diff"] <= 1e-4
    assert card.source["description"].startswith(f"SavedModel signature '{signature}' with 2 inputs, 2 outputs")


def test_saved_model_unknown_signature(saved_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(str(saved_model_dir), "two-saved", out=tmp_path, signature="predict")
    message = str(info.value)
    assert "no signature 'predict'" in message and "serve, serving_default" in message
    assert not (tmp_path / "two-saved").exists()


def _write_module(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))
    sys.modules.pop(name, None)


def test_python_function_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tests_dir = Path(export_models.__file__).parent
    _write_module(
        tmp_path,
        "my_model_src",
        f"""
        import sys
        sys.path.insert(0, {str(tests_dir)!r})
        import models

        def build():
            return models.build_embedding(vocab=20)

        def not_a_model():
            return {{"weights": [1, 2, 3]}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])

    card = export_model("my_model_src:build", "from-python", out="store")
    check_version_dir(tmp_path / "store" / "from-python" / "1")
    assert card.source["kind"] == "python" and card.source["location"] == "my_model_src:build"
    assert [(s.name, s.datatype) for s in card.inputs] == [("tokens", "INT64")]

    with pytest.raises(ExportError, match=r"returned dict, not a keras.Model — make the function return"):
        export_model("my_model_src:not_a_model", "from-python", out="store")
    with pytest.raises(ExportError, match=r"has no function 'missing'"):
        export_model("my_model_src:missing", "from-python", out="store")
    assert sorted(p.name for p in (tmp_path / "store" / "from-python").iterdir()) == ["1"]


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("x.keras", "source 'x.keras' does not exist"),
        ("no_such_module_xyz:build", "no module named 'no_such_module_xyz'"),
        ("empty-dir", "is a directory without saved_model.pb"),
        ("weights.bin", "is not a .keras/.h5 file"),
    ],
)
def test_invalid_sources(source: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ExportError) as info:
        export_model(source, "bad", out="store")
    message = str(info.value)
    assert problem in message
    assert "pass a .keras file, a SavedModel directory, or package.module:function" in message
    assert "\n" not in message and info.value.exit_code == 2
    assert not (tmp_path / "store").exists()


def test_classify_source_needs_no_tensorflow(tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_bytes(b"zip")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert classify_source(tmp_path / "m.keras").kind == "keras"
    assert classify_source(str(tmp_path / "sm")).kind == "saved_model"
    assert classify_source("pkg.mod:fn").kind == "python"


def test_corrupt_keras_file(tmp_path: Path) -> None:
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ExportError, match=r"cannot load Keras model .*broken.keras") as info:
        export_model(str(tmp_path / "broken.keras"), "broken", out=tmp_path / "store")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store").exists()
