"""The QA pages in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

The night page of the catalogue the real assets filled (tests/test_web.py builds it once per session):
it loads, every image on it is decoded by the browser, and a click on a thumbnail reaches that chunk's page,
whose images load too. A screenshot of each page is written under the test's tmp folder for a person to look at.
"""

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.test_web import Server, built_stream, sql

# the catalogue these pages read is filled by real CASA child jobs through Dagster: not in `make test-fast`
pytestmark = pytest.mark.casa

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_LOAD_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return built_stream(tmp_path_factory)


@pytest.fixture(scope="module")
def server(stream):
    srv = Server(stream["layout"].state.parent)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    yield driver
    driver.quit()


def wait_for_images(driver) -> list[dict]:
    """Wait until every <img> finished loading; return each one's src and decoded natural size."""
    WebDriverWait(driver, PAGE_LOAD_TIMEOUT_S).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    return driver.execute_script(
        "return Array.from(document.images)"
        ".map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight}))"
    )


def test_night_page_thumbnails_decode_and_lead_to_the_chunk(server, stream, browser, tmp_path):
    layout = stream["layout"]
    browser.get(server.base + "/")
    assert browser.current_url == f"{server.base}/night/{stream['date']}"  # / redirects to the newest night
    assert browser.title.startswith(f"Night of {stream['date']}")
    images = wait_for_images(browser)
    pngs = sql(layout, "SELECT png_path FROM images WHERE status IN ('ok', 'flagged') ORDER BY window_key")
    thumbs = [i for i in images if i["src"].startswith("/files/images/")]
    assert len(thumbs) == len(pngs) == 3
    assert any(i["src"] == f"/night/{stream['date']}/rms.png" for i in images)
    assert any(i["src"].startswith("/files/mosaics/") for i in images)
    undecoded = [i["src"] for i in images if i["w"] == 0 or i["h"] == 0]
    assert undecoded == [], undecoded
    # the strip: one cell per window of the day, the three chunks among them
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.strip rect")) == 288
    browser.save_screenshot(str(tmp_path / "night.png"))

    target = stream["targets"][0]
    link = browser.find_element(By.CSS_SELECTOR, f'a.thumb[href="/chunk/{target}"]')
    link.click()
    WebDriverWait(browser, PAGE_LOAD_TIMEOUT_S).until(ec.title_contains(f"Chunk {target}"))
    assert browser.current_url == f"{server.base}/chunk/{target}"
    images = wait_for_images(browser)
    assert [i["src"] for i in images if i["w"] == 0] == []
    assert any(i["src"].endswith(".bandpass.png") for i in images)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "CORRECTED_DATA" in body and "dynamic range" in body
    browser.save_screenshot(str(tmp_path / "chunk.png"))

    browser.find_element(By.LINK_TEXT, "calibration").click()
    WebDriverWait(browser, PAGE_LOAD_TIMEOUT_S).until(ec.title_contains("Calibration history"))
    assert [i["src"] for i in wait_for_images(browser) if i["w"] == 0] == []
    assert "0834+555" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "calibration.png"))
    assert all((tmp_path / f"{n}.png").stat().st_size > 10_000 for n in ("night", "chunk", "calibration"))


def test_api_docs_render_offline(server, browser):
    """Swagger UI from the installed package (no network here): the routes are listed."""
    browser.get(server.base + "/docs")
    WebDriverWait(browser, PAGE_LOAD_TIMEOUT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    )
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/status", "/api/groups/{window}", "/api/reprocess/{window}"} <= paths
