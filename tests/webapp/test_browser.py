"""The upload page in a real headless browser (Debian's chromium, driven by playwright):
upload a photo, see a box over the face and the enrolled name beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.webapp.stack import WebStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RESULTS = Path(__file__).resolve().parents[2] / "results"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """A headless Debian chromium; skips with the fix when it is not installed."""
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is missing: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def test_upload_page_draws_boxes_and_names(browser, enrolled_stack: WebStack,  # type: ignore[no-untyped-def]
                                           tmp_path: Path) -> None:
    name, data = enrolled_stack.sample
    photo = tmp_path / "probe.jpg"
    photo.write_bytes(data)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(enrolled_stack.url + "/")
        page.set_input_files("#image-input", str(photo))
        page.click("#submit-button")
        page.wait_for_selector("#result[data-state=done]", timeout=60_000)
        boxes = page.locator("[data-testid=face-box]")
        assert boxes.count() >= 1
        assert boxes.first.get_attribute("data-identity") == name
        assert name in page.locator("[data-testid=face-name]").first.text_content()
        assert page.locator("#label").text_content() == name
        assert page.locator("#faces tbody tr").count() == boxes.count()
        # The box is drawn over the image, not beside it.
        img = page.locator("#preview").bounding_box()
        box = boxes.first.bounding_box()
        assert img and box and box["width"] > 10 and box["height"] > 10
        assert img["x"] - 1 <= box["x"] and box["x"] + box["width"] <= img["x"] + img["width"] + 1
        assert img["y"] - 1 <= box["y"] and box["y"] + box["height"] <= img["y"] + img["height"] + 1
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / "upload_page.png"), full_page=True)
    finally:
        page.close()
    assert errors == []


def test_upload_page_shows_clear_error(browser, enrolled_stack: WebStack,  # type: ignore[no-untyped-def]
                                       tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    page = browser.new_page()
    try:
        page.goto(enrolled_stack.url + "/")
        page.set_input_files("#image-input", str(text))
        page.click("#submit-button")
        page.wait_for_selector("#status.error", timeout=30_000)
        assert "not an image" in page.locator("#status").text_content()
        assert page.locator("#result").is_hidden()
    finally:
        page.close()
