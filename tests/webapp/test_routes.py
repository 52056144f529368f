"""Every route end to end: real HTTP to gunicorn → S3 and SQS on moto's server → real
Celery workers → S3-backed results."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from PIL import Image

from config import aws
from config.web import WebSettings
from deploy.provision import provision
from recognition.weights.sdist import celebrity_dataset
from tests.webapp.fixtures import API_KEY, unique_settings
from tests.webapp.stack import WebStack, serve_in_thread
from webapp import create_app

KEY = {"X-API-Key": API_KEY}


def _blank_png() -> bytes:
    """A picture with no face in it."""
    buf = io.BytesIO()
    Image.new("RGB", (96, 80), (120, 180, 240)).save(buf, "PNG")
    return buf.getvalue()


def _celebrity_photos(settings_cache: Path, name: str, count: int) -> list[tuple[str, bytes]]:
    folder = celebrity_dataset(settings_cache) / "train" / name
    return [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.jpg"))[:count]]


def test_compat_route_answers_stem_and_label(web_stack: WebStack) -> None:
    r = requests.post(web_stack.url + "/", files={"inputFile": ("sky_01.png", _blank_png())},
                      timeout=90)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == "sky_01:NoFace"
    s3 = aws.client(web_stack.settings, "s3")
    # Every page: the session's stack holds more than one page (1000) of inputs.
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=web_stack.settings.input_bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert any(k.endswith("/sky_01.png") for k in keys)
    label = s3.get_object(Bucket=web_stack.settings.output_bucket, Key="sky_01")
    assert label["Body"].read().decode().strip() == "NoFace"


def test_recognition_json_wait_and_later(web_stack: WebStack) -> None:
    url = web_stack.url + "/api/v1/recognitions"
    r = requests.post(url, files={"image": ("sky.png", _blank_png())}, timeout=90)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "NoFace" and body["faces"] == [] and body["status"] == "done"
    assert len(body["request_id"]) == 32
    assert {"submit", "wait", "web_total"} <= set(body["timings"])

    r = requests.post(url + "?wait=false", files={"image": ("sky.png", _blank_png())},
                      timeout=30)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    assert location == r.json()["location"] == f"/api/v1/recognitions/{r.json()['request_id']}"
    deadline = time.monotonic() + 60
    while True:
        got = requests.get(web_stack.url + location, timeout=30)
        if got.status_code == 200 or time.monotonic() > deadline:
            break
        assert got.status_code == 202 and got.json()["status"] == "pending"
        time.sleep(0.2)
    assert got.status_code == 200, got.text
    assert got.json()["label"] == "NoFace"
    assert got.json()["request_id"] == r.json()["request_id"]

    missing = requests.get(url + "/" + "0" * 32, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_request"


def test_truncated_image_is_refused_at_the_door(web_stack: WebStack) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 200, 30)).save(buf, "JPEG")
    truncated = buf.getvalue()[:300]
    r = requests.post(web_stack.url + "/api/v1/recognitions",
                      files={"image": ("cut.jpg", truncated)}, timeout=90)
    assert r.status_code == 400 and r.json()["error"] == "truncated", r.text
    assert "Traceback" not in r.text and "cut.jpg" in r.json()["message"]


def test_identities_enrol_list_remove(web_stack: WebStack) -> None:
    base = web_stack.url + "/api/v1/identities"
    photos = _celebrity_photos(web_stack.settings.cache_dir, "madonna", 2)
    files = [("image", (n, d, "image/jpeg")) for n, d in photos]
    r = requests.post(base + "/Madonna/images", files=files, headers=KEY, timeout=180)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Madonna" and r.json()["enrolled"] == 2
    listed = requests.get(base, timeout=30).json()
    assert {"name": "Madonna", "photos": r.json()["photos"]} in listed["identities"]

    # The workers pick up the change without a restart.
    probe = _celebrity_photos(web_stack.settings.cache_dir, "madonna", 3)[2]
    deadline = time.monotonic() + 30
    label = None
    while time.monotonic() < deadline and label != "Madonna":
        got = requests.post(web_stack.url + "/", files={"inputFile": probe}, timeout=90)
        label = got.text.split(":", 1)[1]
    assert label == "Madonna"

    no_face = requests.post(base + "/Nobody/images", files={"image": ("sky.png", _blank_png())},
                            headers=KEY, timeout=180)
    assert no_face.status_code == 400, no_face.text
    assert "nothing was enrolled" in no_face.json()["message"]
    assert "Nobody" not in {i["name"] for i in requests.get(base, timeout=30).json()[
        "identities"]}

    gone = requests.delete(base + "/Madonna", headers=KEY, timeout=30)
    assert gone.status_code == 200 and gone.json() == {"name": "Madonna", "removed": True}
    again = requests.delete(base + "/Madonna", headers=KEY, timeout=30)
    assert again.status_code == 404 and again.json()["error"] == "unknown_identity"


def test_fleet_reports_queue_and_published_state(web_stack: WebStack) -> None:
    settings = web_stack.settings
    r = requests.get(web_stack.url + "/api/v1/fleet", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queue"]["name"] == settings.queue
    assert isinstance(body["queue"]["visible"], int) and isinstance(body["queue"]["in_flight"],
                                                                    int)
    assert body["buckets"] == {"input": settings.input_bucket,
                               "output": settings.output_bucket, "model": settings.model_bucket}
    assert body["endpoint"] == settings.aws_endpoint
    assert body["autoscaler"]["published"] is False and body["instances"] == []

    state = {"version": 1, "updated": time.time(), "min": 0, "max": 15, "desired": 2,
             "instances": [{"id": "i-1", "name": "app-tier-instance-1", "slot": 1,
                            "state": "running", "since": time.time() - 5, "origin": "launch"}],
             "decisions": [{"time": time.time(), "desired": 2, "reason": "scale-out"}]}
    s3 = aws.client(settings, "s3")
    key = settings.fleet_state_key
    s3.put_object(Bucket=settings.output_bucket, Key=key, Body=json.dumps(state).encode())
    try:
        body = requests.get(web_stack.url + "/api/v1/fleet", timeout=30).json()
    finally:
        s3.delete_object(Bucket=settings.output_bucket, Key=key)
    assert body["desired"] == 2 and body["max"] == 15
    assert body["instances"][0]["state"] == "running" and "launch_time" in body["instances"][0]
    assert body["decisions"][-1]["reason"] == "scale-out"
    assert body["autoscaler"]["published"] is True and body["autoscaler"]["stale"] is False


def test_healthz_and_metrics(web_stack: WebStack) -> None:
    r = requests.get(web_stack.url + "/healthz", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    requests.post(web_stack.url + "/", files={"inputFile": ("m.png", _blank_png())}, timeout=90)
    text = requests.get(web_stack.url + "/metrics", timeout=30).text
    assert 'facefleet_http_requests_total{method="POST",route="/",status="200"}' in text
    assert 'facefleet_http_request_duration_seconds_count{method="POST",route="/"}' in text
    assert 'facefleet_queue_depth{state="visible"}' in text
    assert "facefleet_queue_depth_up 1.0" in text
    assert "facefleet_http_requests_waiting 0.0" in text


def test_huge_body_gets_413_under_gunicorn(web_stack: WebStack) -> None:
    blob = b"\xff\xd8" + b"\0" * (web_stack.settings.max_upload_bytes + 1_000_000)
    r = requests.post(web_stack.url + "/api/v1/recognitions", files={"image": ("x.jpg", blob)},
                      timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "too_large"


def test_timeout_gives_504_and_a_full_server_gives_503(moto_endpoint: str) -> None:
    # A provisioned queue that no worker consumes: every wait ends in a timeout.
    # 5 s: long enough that all four requests arrive while the first two still wait.
    settings = unique_settings(moto_endpoint, result_timeout=5.0)
    provision(settings, upload_weights=False)
    web = replace(WebSettings(), threads=16, max_waiting=2)
    app = create_app({"FACEFLEET_SETTINGS": settings, "FACEFLEET_WEB": web})
    with serve_in_thread(app) as url:
        def post(_: int) -> requests.Response:
            return requests.post(url + "/api/v1/recognitions",
                                 files={"image": ("q.png", _blank_png())}, timeout=60)

        with ThreadPoolExecutor(4) as pool:
            sent = [pool.submit(post, i) for i in range(4)]
            time.sleep(1.0)  # two of them now wait (5 s), two were refused
            # A full server refuses before it parses a body: a bad upload gets the 503
            # too, not the 400 it would get from a server with room.
            shed = requests.post(url + "/", files={"inputFile": ("q.png", b"no image")},
                                 timeout=60)
            assert shed.status_code == 503 and "already waiting" in shed.text, shed.text
            responses = [f.result() for f in sent]
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [503, 503, 504, 504], [r.text for r in responses]
        timed_out = next(r for r in responses if r.status_code == 504)
        assert timed_out.json()["error"] == "timeout"
        location = timed_out.headers["Location"]
        pending = requests.get(url + location, timeout=30)
        assert pending.status_code == 202 and pending.json()["status"] == "pending"
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["Retry-After"] and "already waiting" in busy.json()["message"]
        compat = requests.post(url + "/", files={"inputFile": ("q.png", _blank_png())},
                               timeout=60)
        assert compat.status_code == 504 and compat.text.startswith("Error 504")


@pytest.mark.parametrize("path", ["/", "/static/upload.js", "/static/upload.css"])
def test_upload_page_assets(web_stack: WebStack, path: str) -> None:
    r = requests.get(web_stack.url + path, timeout=30)
    assert r.status_code == 200 and len(r.content) > 100
