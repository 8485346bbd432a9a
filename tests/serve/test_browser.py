"""The page as a person uses it, in a real headless Chromium driven by Selenium: upload an apple,
click Translate, wait for the translation, check it has the apple's size, keep a screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` (.ci/run installs them); skipped, saying so, only
where they are absent."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless browser: install Debian's chromium and chromium-driver (apt-get install -y chromium "
    "chromium-driver; .ci/run does)",
)


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def loaded_images(driver, css: str) -> list[tuple[int, int]]:
    """(natural width, height) of the fully loaded images inside ``css``."""
    from selenium.webdriver.common.by import By

    sizes = [driver.execute_script("return arguments[0].complete ? [arguments[0].naturalWidth, "
                                   "arguments[0].naturalHeight] : null", e)
             for e in driver.find_elements(By.CSS_SELECTOR, f"{css} img")]  # fmt: skip
    return [tuple(s) for s in sizes if s and s[0]]


def test_upload_an_apple_and_translate_it_in_a_real_browser(live, browser, apple, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(live.url + "/")
    upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-a2o input[type=file]"))[0]
    assert "a2o" in browser.find_element(By.CSS_SELECTOR, "#tab-a2o").text  # the card is on the page
    assert "1,234" in browser.find_element(By.CSS_SELECTOR, "#tab-a2o").text
    upload.send_keys(str(apple))
    wait.until(lambda d: loaded_images(d, "#input-a2o"))  # the preview shows before we click
    browser.find_element(By.CSS_SELECTOR, "#translate-a2o").click()
    size = Image.open(apple).size
    translated = wait.until(lambda d: loaded_images(d, "#translation-a2o"))
    roundtrip = wait.until(lambda d: loaded_images(d, "#roundtrip-a2o"))
    assert translated == [size] and roundtrip == [size]
    assert "one piece" in browser.find_element(By.CSS_SELECTOR, "#status-a2o").text
    src = browser.find_element(By.CSS_SELECTOR, "#translation-a2o img").get_attribute("src")
    assert src.endswith(".png")  # a lossless download, not Gradio's default WebP
    shot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(shot)) and Image.open(shot).size[0] > 0

    # a one-sided model offers its direction only, and shows no round trip
    browser.find_element(By.CSS_SELECTOR, "#tab-oneway-button").click()
    radios = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#direction-oneway input[type=radio]"))
    assert [r.get_attribute("value") for r in radios] == ["a2b"]
    assert not browser.find_elements(By.CSS_SELECTOR, "#roundtrip-oneway img")
