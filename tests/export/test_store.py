"""Store layout: names, version auto-increment, conflicts, and atomic writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from export_checks import check_version_dir, store_is_clean
from modelfn_export import ExportError, export_model


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
    assert not out.exists()
