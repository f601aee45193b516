"""A raw-text model (TextVectorization inside, onnxruntime-extensions ops) served by the local API and driven from
the playground in headless Chromium: the request form starts with the model's BYTES input, a sentence typed into it
comes back with TensorFlow's tokens and logits. The model function runs in its own sandbox, without TensorFlow, as
on Lambda."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from modelfn_infra.catalog import Catalog, ModelEntry, dump_template, render_template
from modelfn_infra.local.commands import LocalApp

from ..conftest import REPO
from .test_playground import browser  # noqa: F401  (the headless Chromium fixture)

pytestmark = pytest.mark.slow

TEXTS = ["Hello, world! Serve the model.", "the LAZY dog"]


@pytest.fixture(scope="module")
def text_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The zoo's raw-text classifier exported as text/1; ``(store, the Keras model)``."""
    from modelfn_export import export_model

    from ..export.zoo import text_classifier

    root = tmp_path_factory.mktemp("text-store")
    entry = text_classifier(root)
    export_model(entry.source, "text", version="1", out=root / "models", **entry.options)
    return root / "models", entry.source


@pytest.fixture(scope="module")
def text_api(text_store, tmp_path_factory: pytest.TempPathFactory):
    store, _ = text_store
    directory = tmp_path_factory.mktemp("text-app")
    template = render_template(Catalog([ModelEntry("text", "1", memory_mb=512)]), code_uri=str(REPO / "functions" / "inference"))
    path = directory / "template.yaml"
    path.write_text(dump_template(template))
    env = {"TextFunction": {"MODEL_URI": str(store / "text" / "1")}, "ServerFunction": {"MODELFN_CARD_URIS": str(store / "text" / "1")}}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with (directory / "functions.log").open("w") as log, \
            LocalApp(path, env_vars=env, parameter_overrides={"ModelBucket": "unused"}, log_stream=log) as app:
        server = app.serve_api(port=0, api_keys=False)
        try:
            yield server
        finally:
            server.stop()


def test_the_playground_sends_text_and_shows_tensorflows_answer(browser, text_api, text_store):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from modelfn_export.sources import load_source

    browser.get(text_api.url + "/")
    wait = WebDriverWait(browser, 60)
    section = wait.until(lambda d: d.find_element(By.ID, "model-text"))
    assert "BYTES" in section.text
    editor = browser.find_element(By.ID, "request-text")
    request = json.loads(editor.get_attribute("value"))
    assert request["inputs"][0]["datatype"] == "BYTES" and request["inputs"][0]["name"] == "text"
    request["inputs"][0].update(shape=[len(TEXTS), 1], data=TEXTS)
    editor.clear()
    editor.send_keys(json.dumps(request))
    browser.find_element(By.ID, "send-text").click()
    status = browser.find_element(By.ID, "status-text")
    wait.until(lambda d: status.text.startswith("HTTP"))
    assert status.text == "HTTP 200", browser.find_element(By.ID, "response-text").text
    outputs = {o["name"]: o for o in json.loads(browser.find_element(By.ID, "response-text").text)["outputs"]}

    _, model = text_store
    reference = load_source(model).run({"text": np.array([[t] for t in TEXTS], dtype=object)})
    np.testing.assert_array_equal(np.reshape(outputs["tokens"]["data"], outputs["tokens"]["shape"]), reference["tokens"])
    np.testing.assert_allclose(np.reshape(outputs["logits"]["data"], outputs["logits"]["shape"]), reference["logits"],
                               rtol=1e-5, atol=1e-6)
