"""The HTML report in real headless Chromium: it loads offline with no console errors and no network
requests, shows every exercise, fits a phone's width, prints, and its screenshot is not blank.

Chromium and chromedriver come from the system (``make system-deps``; CI installs them): without them
these tests FAIL, they never skip. ``make goldens`` (UPDATE_GOLDENS=1) also refreshes the README's
screenshot, docs/report.png.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from test_render_goldens import mistaken_report
from test_render_safety import payload_report

from grader.render import render_report

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "report.png"
UPDATE = os.environ.get("UPDATE_GOLDENS", "") not in ("", "0")


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("/usr/bin/chromedriver", "chromedriver")
    if not chromium or not driver_path:
        pytest.fail(
            "headless Chromium and chromedriver are required for the HTML report tests: "
            "run `make system-deps` (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1000,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, path: Path) -> tuple[list[dict], list[str]]:
    """Load a page; its console messages and the URLs it requested (besides itself and data: URIs)."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(path.as_uri())
    driver.execute_script("return document.readyState")
    console = driver.get_log("browser")
    requests = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        params = msg["params"]
        url = params["request"]["url"]
        # the page's own requests (not the browser's start page); blocked attempts are listed too
        if (
            params.get("documentURL") == path.as_uri()
            and url != path.as_uri()
            and not url.startswith("data:")
        ):
            requests.append(url)
    return console, requests


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_report(mistaken_report(), "html"), encoding="utf-8")
    return path


def test_report_loads_offline_without_errors_and_shows_every_exercise(browser, report_page) -> None:
    from selenium.webdriver.common.by import By

    console, requests = open_page(browser, report_page)
    assert not [m for m in console if m["level"] in ("SEVERE", "WARNING")], console
    assert requests == []
    report = mistaken_report()
    assert browser.title.startswith(report.submission)
    for e in report.exercises:
        section = browser.find_element(By.ID, f"ex-{e.id}")
        assert section.is_displayed()
        assert e.id in section.text
        assert section.size["height"] > 40
    # every picture decoded (a broken data URI has naturalWidth 0)
    sizes = browser.execute_script("return Array.from(document.images).map(i => [i.alt, i.naturalWidth])")
    assert len(sizes) >= 7 and all(w > 0 for _, w in sizes), sizes


def test_screenshot_is_not_blank(browser, report_page) -> None:
    from PIL import Image

    open_page(browser, report_page)
    png = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    colours = png.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200, len(colours)
    white = next((n for n, c in colours if c == (255, 255, 255)), 0)
    assert white < 0.97 * png.width * png.height
    if UPDATE:
        save_readme_screenshot(browser)


def test_report_fits_a_phone_and_prints(browser, report_page) -> None:
    browser.set_window_size(390, 844)
    try:
        open_page(browser, report_page)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the page scrolls sideways on a phone by {overflow}px"
    finally:
        browser.set_window_size(1000, 1400)
    pdf = base64.b64decode(browser.print_page())
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 2


def test_student_payloads_do_nothing_in_the_browser(browser, tmp_path) -> None:
    path = tmp_path / "payload.html"
    path.write_text(render_report(payload_report(), "html"), encoding="utf-8")
    console, requests = open_page(browser, path)
    assert browser.execute_script("return window.__pwned === undefined")
    assert requests == []
    assert not [m for m in console if m["level"] == "SEVERE"], console
    body = browser.execute_script("return document.body.innerText")
    assert "<script>window.__pwned = 1</script>" in body  # shown as text


def save_readme_screenshot(driver) -> None:
    """docs/report.png: the summary and the softmax section (with its plot), small enough for a README."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    driver.set_window_size(900, 1400)
    try:
        driver.execute_script("window.scrollTo(0, 0)")
        section = driver.find_element(By.ID, "ex-losses.softmax")
        plot = section.find_element(By.CSS_SELECTOR, "figure.fig")
        parts = [
            driver.find_element(By.CSS_SELECTOR, "main > .top"),
            driver.find_element(By.CSS_SELECTOR, "table.summary"),
            section,
        ]
        shots = [Image.open(io.BytesIO(p.screenshot_as_png)).convert("RGB") for p in parts]
        # the softmax section down to its plot (the list of cases below it is left out)
        bottom = plot.location["y"] + plot.size["height"] - section.location["y"] + 8
    finally:
        driver.set_window_size(1000, 1400)
    softmax = shots[2]
    shots[2] = softmax.crop((0, 0, softmax.width, min(softmax.height, bottom)))
    width = max(s.width for s in shots)
    canvas = Image.new("RGB", (width + 24, sum(s.height for s in shots) + 12 * (len(shots) + 1)), "white")
    y = 12
    for s in shots:
        canvas.paste(s, (12, y))
        y += s.height + 12
    scale = 720 / canvas.width
    canvas = canvas.resize((720, round(canvas.height * scale)), Image.Resampling.LANCZOS)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(SCREENSHOT, optimize=True)
    assert SCREENSHOT.stat().st_size < 150_000, SCREENSHOT.stat().st_size
