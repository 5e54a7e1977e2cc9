"""The web page in a real browser: headless Chromium from the system's packages (Debian: chromium and
chromium-driver, installed by .ci/run), driven by selenium. Skips only where no browser is installed.

Screenshots of each page go under the test's tmp dir; with SAVE_SCREENSHOTS=1 also to docs/screenshots/
(the README's pictures): `SAVE_SCREENSHOTS=1 pytest tests/test_ui_browser.py`.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("starlette", reason="the [web] extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the [dev] extra)")

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no Chromium and chromedriver installed (Debian: apt-get install chromium chromium-driver)",
)
SHOTS = REPO / "docs" / "screenshots"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    import uvicorn

    from vllm_compile.ui.app import create_app

    app = create_app([REPO / "profiles"], out_dir=REPO / "out")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the ui server did not start")
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    options.add_argument("--force-device-scale-factor=1")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def shot(driver, tmp_path: Path, name: str) -> Path:
    """A full-page PNG: the window grown to the page's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 600), 2400))  # long pages: their top
    driver.execute_script("window.scrollTo(0, 0)")
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a page, not a blank
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / f"{name}.png")
    driver.set_window_size(1280, 1000)
    return path


def test_fleet_table_lists_the_bundled_profiles(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from vllm_compile import api

    browser.get(server + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    names = [r.get_attribute("data-name") for r in rows]
    expected = {r.name for r in api.plan_fleet([REPO / "profiles"], out_dir=REPO / "out").results}
    assert set(names) == expected and len(names) == len(expected) >= 9
    # Sorting: a click on "KV tokens" orders the rows by it, a second click reverses.
    header = next(
        th
        for th in browser.find_elements(By.CSS_SELECTOR, "#fleet thead th")
        if th.text.startswith("KV tokens")
    )
    header.click()
    kv = [
        int(c.get_attribute("data-sort"))
        for c in browser.find_elements(By.CSS_SELECTOR, "#fleet td.kv-tokens")
    ]
    assert kv == sorted(kv)
    header.click()
    kv = [
        int(c.get_attribute("data-sort"))
        for c in browser.find_elements(By.CSS_SELECTOR, "#fleet td.kv-tokens")
    ]
    assert kv == sorted(kv, reverse=True)
    browser.get(server + "/")
    shot(browser, tmp_path, "fleet")


def test_deployment_page_renders_the_charts(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/d/llama31-70b-h100-tp4/")
    figures = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
    assert len(figures) == 3
    for svg in figures:
        size = svg.size
        assert size["width"] > 300 and size["height"] > 100  # drawn, not empty
    # Expected series, each with drawn geometry.
    for gid in (
        "series-kv-0",
        "series-weights-0",
        "series-itl",
        "series-ttft",
        "series-throughput",
        "frontier",
        "chosen",
    ):
        element = browser.find_element(By.ID, gid)
        geometry = browser.execute_script(
            "const b = arguments[0].getBBox(); return [b.width, b.height];", element
        )
        assert max(geometry) > 0, gid
    text = browser.find_element(By.CSS_SELECTOR, "article.report").text
    assert "Layouts weighed" in text and "Engine settings" in text and "recommended" in text
    shot(browser, tmp_path, "deployment")


def test_what_if_max_model_len_updates_the_kv_figures(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from vllm_compile import api

    browser.get(server + "/d/llama31-70b-h100-tp4/whatif")

    def figure(label: str) -> tuple[str, str | None]:
        row = next(
            r
            for r in browser.find_elements(By.CSS_SELECTOR, "#figures tbody tr")
            if r.find_element(By.TAG_NAME, "th").text.startswith(label)
        )
        cells = row.find_elements(By.TAG_NAME, "td")
        return cells[0].text, (cells[1].text if len(cells) > 1 else None)

    before, after = figure("Maximum concurrency")
    assert before == "13.68x" and after is None
    field = browser.find_element(By.ID, "f-max_model_len")
    field.send_keys("8192")
    browser.find_element(By.ID, "f-gpus").click()  # leaving the field fires `change`: the form re-plans
    WebDriverWait(browser, 60).until(ec.url_contains("max_model_len=8192"))
    WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#figures td.after")))
    expected = api.what_if(REPO / "profiles" / "llama31-70b-h100-tp4.yaml", {"max_model_len": "8192"}).plan
    assert expected is not None
    before, after = figure("Maximum concurrency")
    assert before == "13.68x" and after == f"{expected.memory.kv.max_concurrency:.2f}x" != before
    assert figure("max_model_len") == ("32,768", "8,192")
    assert figure("GPU KV cache size")[1] == f"{expected.memory.kv.tokens:,}"
    browser.find_element(By.CSS_SELECTOR, "#diff summary").click()
    diff = browser.find_element(By.CSS_SELECTOR, "#diff pre").text
    assert "-  max_model_len: 32768" in diff and "+  max_model_len: 8192" in diff
    shot(browser, tmp_path, "whatif")


def test_compare_page(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/compare?a=chat-staging&b=chat-prod")
    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#sides thead th")]
    assert heads[1:] == ["chat-staging", "chat-prod"]
    assert "max_num_seqs" in browser.find_element(By.CSS_SELECTOR, "pre.diff").text
    shot(browser, tmp_path, "compare")
