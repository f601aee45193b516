"""The playground at GET / in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): load the page, draw a digit on the 8x8 pad, predict, read the digit and the ten bars, and
save a screenshot to build/screenshots/ for a person to look at."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = REPO / "build" / "screenshots"
STROKE = [(1, 3), (2, 3), (3, 3), (4, 3), (5, 3), (6, 3), (6, 4)]  # (row, column) cells of a "1"


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no headless Chromium: install Debian's chromium and chromium-driver (.ci/run does, with apt-get)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_draw_a_digit_and_read_the_prediction(browser, api, digits_store):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api.url + "/")
    wait = WebDriverWait(browser, 60)
    section = wait.until(lambda d: d.find_element(By.ID, "model-digits"))
    assert "pixels" in section.text and "FP32" in section.text and "[-1,10]" in section.text
    assert browser.find_element(By.ID, "model-toy").is_displayed()  # every model from the cards is listed

    cells = browser.find_elements(By.CSS_SELECTOR, "#pad-digits [data-cell]")
    assert len(cells) == 64
    stroke = [cells[row * 8 + column] for row, column in STROKE]
    actions = ActionChains(browser).click_and_hold(stroke[0])
    for cell in stroke[1:]:
        actions.move_to_element(cell)
    actions.release().perform()

    browser.find_element(By.ID, "predict-digits").click()
    prediction = browser.find_element(By.ID, "prediction-digits")
    wait.until(lambda d: re.fullmatch(r"\d", prediction.text))

    sent = np.array(json.loads(prediction.get_attribute("data-pixels")), np.float32)
    assert [int(i) for i in np.flatnonzero(sent == 1.0)] == sorted(row * 8 + column for row, column in STROKE)
    session = ort.InferenceSession(str(digits_store / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"pixels": sent[None, :]})[0][0]
    assert prediction.text == str(int(expected.argmax()))
    scores = json.loads(prediction.get_attribute("data-scores"))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars-digits .bar")
    assert len(bars) == 10 and len(browser.find_elements(By.CSS_SELECTOR, "#bars-digits .bar.best")) == 1
    assert browser.find_element(By.ID, "status-digits").text == "HTTP 200"
    assert re.fullmatch(r"\d+\.\d ms", browser.find_element(By.ID, "latency-digits").text)
    assert json.loads(browser.find_element(By.ID, "response-digits").text)["model_name"] == "digits"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "playground-digits.png"
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
    print(f"screenshot: {path} (predicted {prediction.text})")


def test_the_request_form_sends_tf_serving_and_shows_errors(browser, api):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(api.url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.ID, "model-toy"))
    Select(browser.find_element(By.ID, "protocol-toy")).select_by_value("tfserving")
    editor = browser.find_element(By.ID, "request-toy")
    assert json.loads(editor.get_attribute("value"))["instances"][0].keys() == {"features", "ids"}
    browser.find_element(By.ID, "send-toy").click()
    status = browser.find_element(By.ID, "status-toy")
    wait.until(lambda d: status.text.startswith("HTTP"))
    assert status.text == "HTTP 200"
    response = json.loads(browser.find_element(By.ID, "response-toy").text)
    assert set(response["predictions"][0]) == {"probs", "total"}

    editor.clear()
    editor.send_keys('{"instances": [[1, 2]]}')  # wrong for a two-input model: the 400 is shown as is
    browser.find_element(By.ID, "send-toy").click()
    wait.until(lambda d: status.text == "HTTP 400")
    assert "each instance must be an object keyed by input name" in browser.find_element(By.ID, "response-toy").text
