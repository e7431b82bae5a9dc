"""`speechvq serve` in a real browser: Debian's headless Chromium, driven by Selenium through chromedriver.

Uses the shipped model and sample, as a user would: pick the sample, choose a voice, run, wait for the
result, check the figures, the players, the spectrogram and the .svq download, and take a screenshot.
Nothing is downloaded at test time: the browser and driver are the system's (`apt-get install chromium
chromium-driver`; .ci/run installs them). Set SPEECHVQ_SCREENSHOT=path to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="no system Chromium and chromedriver (apt-get install chromium chromium-driver)"),
]

RESULT_TIMEOUT_S = 240  # the sample decoded twice (itself and a conversion) on a slow 2-core machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    import uvicorn

    from speechvq.assets import default_model_path
    from speechvq.codec import Codec
    from speechvq.web.app import create_app
    from speechvq.web.service import CodecService

    service = CodecService(Codec.from_checkpoint(default_model_path()))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    service.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # the fake capture device plays a beep as the microphone, and the fake UI grants access without asking
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1700",
                     "--autoplay-policy=no-user-gesture-required", "--use-fake-device-for-media-stream",
                     "--use-fake-ui-for-media-stream"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_the_sample_through_the_page(server_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server_url)
    _wait(lambda: "voices:" in browser.find_element(By.ID, "model-info").text, 30, "the model description")
    browser.find_element(By.ID, "use-sample").click()
    Select(browser.find_element(By.ID, "voice")).select_by_value("june")
    started = time.monotonic()
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_element(By.ID, "progress-box").is_displayed()
          or browser.find_element(By.ID, "results").is_displayed(), 30, "the progress bar")
    _wait(lambda: browser.find_element(By.ID, "results").is_displayed()
          or browser.find_element(By.ID, "error").is_displayed(), RESULT_TIMEOUT_S, "the result")
    page_s = time.monotonic() - started
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text

    figures = {row.get_attribute("data-key"): row.find_elements(By.TAG_NAME, "td")[1].text
               for row in browser.find_elements(By.CSS_SELECTOR, "#figures tr")}
    for key in ("bitrate: nominal", "bitrate: code entropy", "bitrate: file"):
        assert figures[key].endswith("kbit/s") or "kbit/s (" in figures[key], figures
    assert figures["bitrate: nominal"] == "2.63 kbit/s"  # the shipped model's codes (2,250) and pitch stream (375)
    assert figures["converted to"].startswith("june")

    players = browser.find_elements(By.CSS_SELECTOR, "#players audio")
    assert [p.get_attribute("data-name") for p in players] == ["original.wav", "decoded.wav", "converted.wav"]
    loaded = "return [...document.querySelectorAll('#players audio')].every(a => a.readyState >= 1)"
    _wait(lambda: browser.execute_script(loaded), 30, "the players to load their audio")
    durations = browser.execute_script("return [...document.querySelectorAll('#players audio')].map(a => a.duration)")
    assert durations == pytest.approx([3.25] * 3, abs=0.01)
    _wait(lambda: browser.execute_script(
        "const img = document.getElementById('spectrograms'); return img.complete && img.naturalWidth > 0"),
        30, "the spectrogram image")

    browser.find_element(By.ID, "download-svq").click()
    downloads = tmp_path / "downloads"
    svq = _wait(lambda: [p for p in downloads.glob("*.svq")] if downloads.is_dir() else None, 30,
                "the .svq download")[0]
    assert svq.name == "sample.svq"
    assert svq.read_bytes()[:3] == b"\x89SV"

    screenshot = tmp_path / "serve.png"
    browser.find_element(By.TAG_NAME, "body").screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    keep = os.environ.get("SPEECHVQ_SCREENSHOT")
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, keep)
        print(f"page result after {page_s:.1f} s; figures: {figures}")


def test_a_bad_file_gets_a_message_on_the_page(server_url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"these bytes are not audio" * 40)
    browser.get(server_url)
    _wait(lambda: "voices:" in browser.find_element(By.ID, "model-info").text, 30, "the model description")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "run").click()
    message = _wait(lambda: browser.find_element(By.ID, "error").is_displayed()
                    and browser.find_element(By.ID, "error").text, 30, "the error message")
    assert "cannot read" in message and "not-audio.wav" in message
    assert not browser.find_element(By.ID, "results").is_displayed()


def test_a_microphone_recording_is_coded(server_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(server_url)
    _wait(lambda: "voices:" in browser.find_element(By.ID, "model-info").text, 30, "the model description")
    record = browser.find_element(By.ID, "record")
    assert record.is_displayed()
    record.click()
    _wait(lambda: record.text == "Stop recording", 10, "the recording to start")
    time.sleep(1.5)
    record.click()
    chosen = _wait(lambda: "recording" in browser.find_element(By.ID, "chosen").text
                   and browser.find_element(By.ID, "chosen").text, 10, "the recording to be converted to WAV")
    assert "a recording" in chosen
    browser.find_element(By.ID, "run").click()
    _wait(lambda: browser.find_element(By.ID, "results").is_displayed()
          or browser.find_element(By.ID, "error").is_displayed(), RESULT_TIMEOUT_S, "the result")
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    figures = browser.find_element(By.ID, "figures").text
    assert "recording.wav (audio)" in figures
