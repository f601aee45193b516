"""`modelfn catalog add` edits the catalog in place (comments kept), renders the template, and names
what to do next; `modelfn export` prints that next step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from modelfn_infra.catalog import Catalog, CatalogError, drift
from modelfn_infra.catalog_edit import add_model, latest_version

from ..conftest import REPO

CATALOG = REPO / "infra" / "catalog.yaml"


def store_with(tmp_path, name: str, *versions: str):
    store = tmp_path / "models"
    for version in versions:
        directory = store / name / version
        directory.mkdir(parents=True)
        (directory / "modelcard.json").write_text(json.dumps({"name": name, "version": version}))
        (directory / "model.onnx").write_bytes(b"onnx")
    return store


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelfn_infra.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_add_moves_an_entry_to_the_newest_exported_version_and_renders(tmp_path):
    catalog, template = tmp_path / "catalog.yaml", tmp_path / "template.yaml"
    catalog.write_text(CATALOG.read_text())
    store = store_with(tmp_path, "digits", "1", "2", "10")
    assert latest_version(store, "digits") == "10"
    result = run_cli("catalog", "add", "digits", "--store", str(store), "--catalog", str(catalog), "--template", str(template))
    assert result.returncode == 0, result.stderr
    assert "digits now serves version 10 (was 1)" in result.stdout and "next: modelfn local start-api" in result.stdout
    assert catalog.read_text().startswith(CATALOG.read_text().split("models:")[0])  # the comments survive
    assert Catalog.read(catalog).models[0].version == "10" and Catalog.read(catalog).models[0].memory_mb == 1024
    assert drift(catalog, template) is None
    assert yaml.safe_load(template.read_text())["Resources"]["DigitsFunction"]["Properties"]["Environment"]["Variables"]["MODEL_VERSION"] == "10"


def test_add_appends_a_new_model_and_is_idempotent(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.read_text())
    store = store_with(tmp_path, "mobile-net", "3")
    change = add_model(catalog, "mobile-net", store=store)
    assert change.previous is None and change.entry.version == "3" and change.in_store
    assert [(m.name, m.version) for m in Catalog.read(catalog).models] == [("digits", "1"), ("mobile-net", "3")]
    before = catalog.read_text()
    again = add_model(catalog, "mobile-net", "3", store=store)
    assert again.previous == "3" and catalog.read_text() == before


def test_add_inserts_a_missing_version_line(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("models:\n  - name: toy  # a comment\n    memory_mb: 256\n  - name: digits\n    version: '1'\n")
    add_model(catalog, "toy", "4", store=tmp_path)
    models = {m.name: m for m in Catalog.read(catalog).models}
    assert models["toy"].version == "4" and models["toy"].memory_mb == 256 and models["digits"].version == "1"


@pytest.mark.parametrize("name, version, message", [
    ("Digits", "1", "must match"),
    ("digits", None, "holds no exported version"),
    ("digits", "v2", "version must be a positive integer"),
])
def test_add_refuses_with_the_fix(tmp_path, name, version, message):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.read_text())
    with pytest.raises(CatalogError, match=message):
        add_model(catalog, name, version, store=tmp_path / "empty")
    assert catalog.read_text() == CATALOG.read_text()  # nothing written


def test_add_a_version_only_in_s3_says_start_api_needs_it_locally(tmp_path):
    catalog, template = tmp_path / "catalog.yaml", tmp_path / "template.yaml"
    catalog.write_text(CATALOG.read_text())
    result = run_cli("catalog", "add", "digits", "--version", "7", "--store", str(tmp_path), "--catalog", str(catalog),
                     "--template", str(template))
    assert result.returncode == 0 and "is not in the local store" in result.stdout


def test_export_prints_the_next_step(tmp_path):
    from modelfn_export.cli import next_steps
    from modelfn_runtime.modelcard import ModelCard

    card = ModelCard.from_dict({
        "name": "digits", "version": "2", "created": "", "artifact": {"file": "model.onnx", "sha256": "0", "bytes": 1},
        "opset": 17, "producers": {}, "inputs": [], "outputs": [], "parity": {}, "source": {},
    })
    text = next_steps(card, "models")
    assert "modelfn catalog add digits --version 2" in text and "modelfn local start-api" in text and "--store" not in text
    assert "modelfn catalog add digits --version 2 --store elsewhere" in next_steps(card, "elsewhere")


def test_a_gpu_entry_takes_the_new_versions_model_size_for_its_gpu_memory_check(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("models:\n  - name: resnet\n    version: \"1\"\n    package_type: Image\n    snapstart: false\n"
                       "    deployment: AllAtOnce\n    accelerator: gpu  # on a GPU\n    accelerator_memory_gib: 12\n"
                       "    model_size_mb: 1.0\n")
    store = store_with(tmp_path, "resnet", "2")
    card = store / "resnet" / "2" / "modelcard.json"
    card.write_text(json.dumps({"name": "resnet", "version": "2", "artifact": {"bytes": 102_400_000}}))
    add_model(catalog, "resnet", store=store)
    entry = Catalog.read(catalog).models[0]
    assert (entry.version, entry.model_size_mb) == ("2", 102.4) and "# on a GPU" in catalog.read_text()
