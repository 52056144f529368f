"""Fixtures of the end-to-end tests through the web tier (a pytest plugin, loaded by
tests/conftest.py): one real stack per session (moto's
server over HTTP, provisioned resources, two Celery worker subprocesses, gunicorn with
``webapp/gunicorn_conf.py``), and the same stack with the ten CSE546 images enrolled.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, sync_playwright

from config.settings import Settings
from deploy.embedded_aws import stop_process
from deploy.provision import provision
from tests.webapp.stack import WebStack, start_gunicorn, start_worker, wait_http

API_KEY = "test-key"
WORKERS = 2
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: Where browser tests leave their screenshots.
RESULTS = Path(__file__).resolve().parents[2] / "results"


def unique_settings(endpoint: str, **changes: object) -> Settings:
    """Settings aimed at ``endpoint`` with bucket/queue names nobody else uses."""
    suffix = uuid.uuid4().hex[:8]
    base = Settings.from_env({"FACEFLEET_AWS_ENDPOINT": endpoint,
                              "FACEFLEET_CACHE": os.environ.get("FACEFLEET_CACHE", "")})
    return replace(base, input_bucket=f"web-in-{suffix}", output_bucket=f"web-out-{suffix}",
                   model_bucket=f"web-models-{suffix}", queue=f"web-req-{suffix}",
                   dead_letter_queue=f"web-req-{suffix}-dlq",
                   gallery=f"s3://web-models-{suffix}/gallery.json", **changes)


@pytest.fixture(scope="session")
def web_stack(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[WebStack]:
    """Provisioned resources, two real workers and gunicorn; API key ``test-key``."""
    logs = tmp_path_factory.mktemp("web-stack")
    settings = unique_settings(moto_endpoint, api_key=API_KEY, result_timeout=60.0)
    provision(settings)
    procs = []
    try:
        for n in range(WORKERS):
            procs.append(start_worker(settings, logs / f"worker{n}.log", f"web{n}"))
        web, url = start_gunicorn(settings, logs / "gunicorn.log")
        procs.append(web)
        wait_http(url + "/healthz", 30, web)
        yield WebStack(url=url, settings=settings)
    finally:
        for proc in reversed(procs):
            stop_process(proc, timeout=20)


def cse546_distinct(cse546: Path) -> dict[str, tuple[str, bytes]]:
    """The ten distinct images of the 1000-image zip: stem → (label, bytes)."""
    with (cse546 / "labels_1000.csv").open(newline="") as handle:
        labels = {row["Image"]: row["Results"] for row in csv.DictReader(handle)}
    distinct = {}
    with zipfile.ZipFile(cse546 / "face_images_1000.zip") as archive:
        for n in range(10):
            stem = f"test_{n:03d}"
            distinct[stem] = (labels[stem], archive.read(f"face_images_1000/{stem}.jpg"))
    return distinct


@pytest.fixture
def enrolled_stack(web_stack: WebStack, cse546_dir: Path) -> WebStack:
    """``web_stack`` with each distinct CSE546 image enrolled under its label, through
    the HTTP API (several photos per identity where the labels repeat); enrolled once
    per session, on first use."""
    if web_stack.enrolled:
        return web_stack
    by_label: dict[str, list[tuple[str, bytes]]] = {}
    for stem, (label, data) in cse546_distinct(cse546_dir).items():
        by_label.setdefault(label, []).append((f"{stem}.jpg", data))
    for label, photos in by_label.items():
        files = [("image", (name, io.BytesIO(data), "image/jpeg")) for name, data in photos]
        r = requests.post(f"{web_stack.url}/api/v1/identities/{label}/images", files=files,
                          headers={"X-API-Key": API_KEY}, timeout=180)
        assert r.status_code == 201, r.text
        web_stack.enrolled[label] = [data for _, data in photos]
    web_stack.sample = ("Paul", web_stack.enrolled["Paul"][0])
    return web_stack


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless Debian chromium; skips with the fix when it is not installed."""
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is missing: run `make browser` (apt-get install chromium)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
