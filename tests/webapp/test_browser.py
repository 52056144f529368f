"""The upload page in a real headless browser (Debian's chromium, driven by playwright):
upload a photo, see a box over the face and the enrolled name beside it; on a large
group photo the names stay readable, inside the picture and apart.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Browser, Page

from recognition.weights.sdist import celebrity_dataset
from tests.webapp.fixtures import API_KEY, RESULTS
from tests.webapp.stack import WebStack

#: On-screen font size of a name label, in CSS pixels, whatever the image's pixel size.
LABEL_PX = (10.0, 24.0)
#: Where each name label is and how big its font is on screen (CSS pixels).
LABELS_JS = """() => Array.from(document.querySelectorAll("[data-testid=face-name]")).map(
  (t) => { const r = t.getBoundingClientRect();
           return {text: t.textContent, x: r.x, y: r.y, width: r.width, height: r.height,
                   px: parseFloat(t.getAttribute("font-size")) * t.getScreenCTM().a}; })"""


def recognise_on_page(browser: Browser, url: str, photo: Path, viewport: dict[str, int],
                      timeout_ms: int = 60_000) -> tuple[Page, list[str]]:
    """Open the upload page, recognise ``photo`` through it, and return the page (to
    close) with the JavaScript errors it raised."""
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.set_input_files("#image-input", str(photo))
    page.click("#submit-button")
    page.wait_for_selector("#result[data-state=done]", timeout=timeout_ms)
    return page, errors


def test_upload_page_draws_boxes_and_names(browser: Browser, enrolled_stack: WebStack,
                                           tmp_path: Path) -> None:
    name, data = enrolled_stack.sample
    photo = tmp_path / "probe.jpg"
    photo.write_bytes(data)
    page, errors = recognise_on_page(browser, enrolled_stack.url, photo,
                                     {"width": 1100, "height": 800})
    try:
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
        # A 64 px image is shown enlarged; its label is still a normal size on screen.
        assert all(LABEL_PX[0] <= label["px"] <= LABEL_PX[1]
                   for label in page.evaluate(LABELS_JS))
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / "upload_page.png"), full_page=True)
    finally:
        page.close()
    assert errors == []


def test_upload_page_shows_clear_error(browser: Browser, enrolled_stack: WebStack,
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


def _group_photo(cache_dir: Path) -> bytes:
    """A 2000 px wide group photo: three 5-celebrity photos side by side at 2x, and a row
    of smaller ones (1x) under them, several people twice."""
    from PIL import Image

    val = celebrity_dataset(cache_dir) / "val"
    people = sorted(p.name for p in val.iterdir())
    photos = {name: sorted((val / name).glob("*.jpg")) for name in people}
    rows = [(2.0, [photos[name][0] for name in people[:3]]),
            (1.0, [photos[people[i % 5]][1 + i // 5] for i in range(8)])]
    placed, y = [], 0
    for scale, paths in rows:
        x = height = 0
        for path in paths:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
            image = image.resize((round(image.width * scale), round(image.height * scale)))
            if x + image.width > 2000:
                break
            placed.append((image, x, y))
            x, height = x + image.width, max(height, image.height)
        y += height
    canvas = Image.new("RGB", (2000, y), (96, 96, 96))
    for image, x, top in placed:
        canvas.paste(image, (x, top))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Area (CSS px²) shared by two bounding boxes."""
    dx = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    dy = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(dx, 0.0) * max(dy, 0.0)


def test_group_photo_labels_are_readable_inside_and_apart(
        browser: Browser, enrolled_stack: WebStack, tmp_path: Path) -> None:
    # A long name, so that some label has to be shortened; removed again at the end.
    name = "Jerry Seinfeld the Comedian"
    url = f"{enrolled_stack.url}/api/v1/identities/{name}"
    train = sorted((celebrity_dataset(enrolled_stack.settings.cache_dir) / "train"
                    / "jerry_seinfeld").glob("*.jpg"))[:2]
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in train]
    r = requests.post(url + "/images", files=files, headers={"X-API-Key": API_KEY}, timeout=180)
    assert r.status_code == 201, r.text
    photo = tmp_path / "group.jpg"
    photo.write_bytes(_group_photo(enrolled_stack.settings.cache_dir))
    page, errors = recognise_on_page(browser, enrolled_stack.url, photo,
                                     {"width": 1100, "height": 900}, timeout_ms=120_000)
    try:
        img = page.locator("#preview").bounding_box()
        assert img and img["width"] < 1000  # shown well below its 2000 px
        labels = page.evaluate(LABELS_JS)
        assert len(labels) >= 6
        assert page.locator("[data-testid=face-box]").count() == len(labels)
        names = page.locator("#faces tbody tr td:nth-child(2)").all_text_contents()
        for i, (label, identity) in enumerate(zip(labels, names, strict=True)):
            number, _, shown = label["text"].partition(" ")
            assert number == f"{i + 1}."  # the table's row number
            assert shown == identity or (shown.endswith("…") and identity.startswith(
                shown[:-1])) or not shown, (label, identity)
            assert LABEL_PX[0] <= label["px"] <= LABEL_PX[1], label
            assert img["x"] - 1 <= label["x"]
            assert label["x"] + label["width"] <= img["x"] + img["width"] + 1, label
            assert img["y"] - 1 <= label["y"]
            assert label["y"] + label["height"] <= img["y"] + img["height"] + 1, label
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                assert _overlap(a, b) < 0.5, (a, b)
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / "upload_page_group.png"), full_page=True)
    finally:
        page.close()
        requests.delete(url, headers={"X-API-Key": API_KEY}, timeout=30)
    assert errors == []
