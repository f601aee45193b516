"""Store layout: names, version auto-increment, conflicts, and atomic writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelfn_export import ExportError, export_model

from .export_checks import check_version_dir, store_is_clean


def test_version_auto_increments(digits: dict[str, Any], tmp_path: Path) -> None:
    first = export_model(str(digits["path"]), "digits", out=tmp_path)
    second = export_model(str(digits["path"]), "digits", out=tmp_path)
    assert (first.version, second.version) == ("1", "2")
    (tmp_path / "digits" / "7").mkdir()  # versions need not be contiguous: max + 1
    (tmp_path / "digits" / "notes").mkdir()  # non-integer entries are ignored
    third = export_model(str(digits["path"]), "digits", out=tmp_path)
    assert third.version == "8"
    for version in ("1", "2", "8"):
        check_version_dir(tmp_path / "digits" / version)
    explicit = export_model(str(digits["path"]), "digits", out=tmp_path, version=5)
    assert explicit.version == "5"
    check_version_dir(tmp_path / "digits" / "5")
    assert store_is_clean(tmp_path)


def test_existing_version_is_never_overwritten(digits: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "digits" / "3").mkdir(parents=True)
    (tmp_path / "digits" / "3" / "model.onnx").write_bytes(b"original")
    with pytest.raises(ExportError) as info:
        export_model(str(digits["path"]), "digits", out=tmp_path, version="3")
    assert str(info.value) == (
        f"version 3 of 'digits' already exists at '{tmp_path / 'digits' / '3'}' — pick another --version, "
        "omit --version to use the next one, or delete that directory"
    )
    assert (tmp_path / "digits" / "3" / "model.onnx").read_bytes() == b"original"


@pytest.mark.parametrize("name", ["Digits", "-digits", "my_model", "a" * 64, "", "digits/1"])
def test_invalid_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"model name .* is invalid — use 1–63 lowercase letters, digits and '-'"):
        export_model("whatever.keras", name, out=tmp_path / "store")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("version", ["0", "v2", "-1", "1.5"])
def test_invalid_versions(version: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"version .* is invalid — use a positive integer"):
        export_model("whatever.keras", "digits", out=tmp_path, version=version)


def test_failure_late_in_the_export_leaves_nothing(
    digits: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelfn_export.card

    def broken_card(**_: Any) -> Any:
        raise RuntimeError("disk on fire")

    # a store that already holds another model must keep it, and the new model leaves nothing
    (tmp_path / "other" / "1").mkdir(parents=True)
    monkeypatch.setattr(modelfn_export.card, "build_card", broken_card)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_model(str(digits["path"]), "digits", out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    assert store_is_clean(tmp_path)

    # the same with an existing model directory: no version dir and no .tmp-* dir
    (tmp_path / "digits" / "1").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_model(str(digits["path"]), "digits", out=tmp_path)
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == ["1"]


def test_failure_in_a_fresh_store_removes_the_store(digits: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "new" / "store"
    with pytest.raises(ExportError, match="parity failed"):
        export_model(str(digits["path"]), "digits", out=out, rtol=0, atol=0)
    assert not out.exists() and not (tmp_path / "new").exists()


def test_optimized_model_failing_parity_falls_back_to_the_converted_one(
    digits: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx
    from onnx import numpy_helper

    import modelfn_export.optimize

    def corrupting_optimize(src: Any, dst: Any, level: str = "basic") -> str:
        model = onnx.load(str(src))
        for init in model.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
        onnx.save(model, str(dst))
        return level

    monkeypatch.setattr(modelfn_export.optimize, "optimize", corrupting_optimize)
    notes: list[str] = []
    card = export_model(str(digits["path"]), "digits", out=tmp_path, progress=notes.append)
    assert card.optimization["level"] == "disabled"
    assert card.parity["max_abs_diff"] <= 1e-4  # the artifact is the one that passed parity
    assert any("keeping the unoptimized model" in n for n in notes)
    check_version_dir(tmp_path / "digits" / "1")
