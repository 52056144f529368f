"""Errors of every route through real HTTP, where no worker is needed: bad requests are
refused before anything is stored, and an unreachable AWS endpoint gives a fast 503.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests
from PIL import Image

from config.settings import Settings
from config.web import WebSettings
from deploy.embedded_aws import free_port
from tests.webapp.stack import serve_in_thread
from webapp import create_app

LIMIT = 4096  # bytes; small so that "too large" bodies stay small too


def _jpeg(size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 60, 90)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def dead_url() -> Iterator[str]:
    """The web tier aimed at an AWS endpoint where nothing listens, with an API key."""
    settings = replace(Settings.from_env({}), aws_endpoint=f"http://127.0.0.1:{free_port()}",
                       max_upload_bytes=LIMIT, api_key="s3cret", result_timeout=5.0)
    app = create_app({"FACEFLEET_SETTINGS": settings, "FACEFLEET_WEB": WebSettings()})
    with serve_in_thread(app) as url:
        yield url


def test_compat_missing_field_is_plain_text_400(dead_url: str) -> None:
    r = requests.post(dead_url + "/", files={"image": ("a.jpg", _jpeg())}, timeout=30)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "inputFile" in r.text and "Traceback" not in r.text


def test_compat_not_an_image(dead_url: str) -> None:
    r = requests.post(dead_url + "/", files={"inputFile": ("notes.jpg", b"just text")},
                      timeout=30)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "notes.jpg" in r.text and "text, not an image" in r.text


@pytest.mark.parametrize("size", [LIMIT + 1, 50 * LIMIT])
def test_too_large_is_413_on_both_protocols(dead_url: str, size: int) -> None:
    # Just over the per-file limit (checked by the app) and far over the body limit
    # (refused by Werkzeug before the body is read).
    blob = b"\xff\xd8" + b"\0" * (size - 2)
    r = requests.post(dead_url + "/", files={"inputFile": ("big.jpg", blob)}, timeout=30)
    assert r.status_code == 413 and str(LIMIT) in r.text
    r = requests.post(dead_url + "/api/v1/recognitions", files={"image": ("big.jpg", blob)},
                      timeout=30)
    assert r.status_code == 413
    assert r.json()["error"] == "too_large" and str(LIMIT) in r.json()["message"]


def test_api_missing_field_and_bad_image_are_json(dead_url: str) -> None:
    r = requests.post(dead_url + "/api/v1/recognitions", data={"x": "1"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "missing_field"
    r = requests.post(dead_url + "/api/v1/recognitions", files={"image": ("e.png", b"")},
                      timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "empty_file"


def test_unknown_route_and_method_are_json(dead_url: str) -> None:
    r = requests.get(dead_url + "/api/v1/nothing", timeout=30)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = requests.put(dead_url + "/api/v1/recognitions", timeout=30)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_malformed_request_id_is_404(dead_url: str) -> None:
    r = requests.get(dead_url + "/api/v1/recognitions/..%2F..%2Fetc", timeout=30)
    assert r.status_code == 404


def test_identity_writes_need_the_api_key(dead_url: str) -> None:
    files = {"image": ("p.jpg", _jpeg())}
    r = requests.post(dead_url + "/api/v1/identities/Paul/images", files=files, timeout=30)
    assert r.status_code == 401 and "X-API-Key" in r.json()["message"]
    r = requests.post(dead_url + "/api/v1/identities/Paul/images", files=files,
                      headers={"X-API-Key": "wrong"}, timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "api_key_invalid"
    r = requests.delete(dead_url + "/api/v1/identities/Paul", timeout=30)
    assert r.status_code == 401
    r = requests.delete(dead_url + "/api/v1/identities/a;b", headers={"X-API-Key": "s3cret"},
                        timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "bad_name"


def test_unreachable_endpoint_is_a_fast_503(dead_url: str) -> None:
    r = requests.post(dead_url + "/", files={"inputFile": ("a.jpg", _jpeg())}, timeout=60)
    assert r.status_code == 503, r.text
    assert "unreachable" in r.text and "make up" in r.text
    assert r.headers.get("Retry-After")
    r = requests.post(dead_url + "/api/v1/recognitions", files={"image": ("a.jpg", _jpeg())},
                      timeout=60)
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    r = requests.get(dead_url + "/api/v1/fleet", timeout=60)
    assert r.status_code == 503
    r = requests.get(dead_url + "/healthz", timeout=60)
    assert r.status_code == 503 and r.json()["status"] == "degraded"
    assert r.json()["checks"]["queue"]["ok"] is False


def test_metrics_count_requests_by_route_and_status(dead_url: str) -> None:
    requests.post(dead_url + "/", data={}, timeout=30)
    text = requests.get(dead_url + "/metrics", timeout=60).text
    assert 'facefleet_http_requests_total{method="POST",route="/",status="400"}' in text
    assert "facefleet_http_request_duration_seconds_bucket" in text
    assert "facefleet_queue_depth_up 0.0" in text


def test_405_lists_the_allowed_methods(dead_url: str) -> None:
    # RFC 9110: a 405 carries Allow (found by schemathesis's unsupported_method check).
    r = requests.request("TRACE", dead_url + "/api/v1/fleet", timeout=30)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD", "OPTIONS"}
    assert r.headers["Content-Type"] == "application/json"


def test_unknown_wait_word_is_a_400_not_a_wait(dead_url: str) -> None:
    # Found by schemathesis: wait=<anything> used to be read as wait=true.
    r = requests.post(dead_url + "/api/v1/recognitions?wait=flase",
                      files={"image": ("a.jpg", _jpeg())}, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "bad_parameter"
    assert "wait=false" in r.json()["message"]
