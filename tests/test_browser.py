"""The drawing page in a real browser: Debian's Chromium, headless, driven through chromedriver.

Needs `apt-get install chromium chromium-driver` and `pip install selenium` (done by `.ci/run`);
skips only where one of them is absent. Nothing is downloaded at test time: the driver path is given
explicitly, so selenium-manager is never asked to fetch one.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pytest

from pix2pix.serve.app import create_app
from tests.test_serve import label_model, running_server

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
if importlib.util.find_spec("selenium") is None:
    missing.append("the selenium package")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(missing), reason=f"browser test needs {', '.join(missing)} (see .ci/run)"),
]

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,900",
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# the output's pixels, summed in the page: tells whether the translated image itself changed
OUTPUT_CHECKSUM = """
const image = document.getElementById("output");
const canvas = document.createElement("canvas");
canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(image, 0, 0);
return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data).reduce((a, b) => a + b, 0);
"""


def test_drawing_a_stroke_updates_the_translation(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with running_server(create_app(label_model(64), workers=2)) as url:
        browser.get(url + "/")
        output = browser.find_element(By.ID, "output")

        def translations() -> int:
            return int(output.get_attribute("data-count") or 0)

        wait_for(lambda: translations() >= 1, what="the first translation (of the starting canvas)")
        first_src, first_checksum = output.get_attribute("src"), browser.execute_script(OUTPUT_CHECKSUM)
        buttons = [button.text for button in browser.find_elements(By.CSS_SELECTOR, "#palette button")]
        assert "window" in buttons and "door" in buttons and len(buttons) == 12

        canvas = browser.find_element(By.ID, "drawing")
        browser.find_element(By.XPATH, "//div[@id='palette']/button[normalize-space()='door']").click()
        # a stroke across the middle of the canvas: press, a few moves, release (the stroke's end)
        stroke = ActionChains(browser).move_to_element_with_offset(canvas, -80, -40).click_and_hold()
        for step in range(1, 9):
            stroke.move_by_offset(20, 10 if step % 2 else -5)
        stroke.release().perform()

        wait_for(lambda: translations() >= 2, what="the translation of the drawing")
        assert output.get_attribute("src") != first_src
        assert browser.execute_script("return document.getElementById('output').naturalWidth") == 64
        assert browser.execute_script(OUTPUT_CHECKSUM) != first_checksum
        assert "error" not in browser.find_element(By.ID, "status").text
        browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000
