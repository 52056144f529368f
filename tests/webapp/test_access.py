"""Access over real HTTP: the API key on recognitions when
FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION is on (a second gunicorn on the live stack's
queue and workers), and the dashboard's guard when the web tier listens beyond loopback.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from flask import Flask
from PIL import Image

from config.dashboard import DashboardSettings
from config.env import ConfigError
from config.settings import Settings
from config.web import WebSettings, is_loopback_bind
from deploy.embedded_aws import free_port, stop_process
from tests.webapp.fixtures import API_KEY
from tests.webapp.stack import WebStack, serve_in_thread, start_gunicorn
from webapp import create_app

KEY = {"X-API-Key": API_KEY}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 90, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def strict_url(web_stack: WebStack, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[str]:
    """gunicorn on the live stack's queue with the key required on recognitions and on
    the dashboard (FACEFLEET_DASHBOARD_GUARD=key: it binds loopback)."""
    log = tmp_path_factory.mktemp("strict") / "gunicorn.log"
    proc, url = start_gunicorn(web_stack.settings, log, {
        "FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION": "true",
        "FACEFLEET_DASHBOARD_GUARD": "key", "FACEFLEET_DASHBOARD_EVENTS": "false"})
    try:
        yield url
    finally:
        stop_process(proc, timeout=20)


def test_recognitions_need_the_key_when_configured(strict_url: str) -> None:
    url = strict_url + "/api/v1/recognitions"
    r = requests.post(url, files={"image": ("a.png", _png())}, timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "api_key_required"
    assert "X-API-Key" in r.json()["message"]
    assert "FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION" in r.json()["message"]
    assert r.headers["WWW-Authenticate"] == "X-API-Key"
    r = requests.post(url, files={"image": ("a.png", _png())}, headers={"X-API-Key": "no"},
                      timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "api_key_invalid"
    r = requests.get(url + "/" + "0" * 32, timeout=30)
    assert r.status_code == 401

    r = requests.post(url, files={"image": ("a.png", _png())}, headers=KEY, timeout=90)
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "NoFace"
    r = requests.get(url + "/" + r.json()["request_id"], headers=KEY, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "done"


def test_compat_route_needs_the_key_too(strict_url: str) -> None:
    r = requests.post(strict_url + "/", files={"inputFile": ("sky.png", _png())}, timeout=30)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("text/plain") and "X-API-Key" in r.text
    r = requests.post(strict_url + "/", files={"inputFile": ("sky.png", _png())}, headers=KEY,
                      timeout=90)
    assert r.status_code == 200 and r.text == "sky:NoFace"


def test_reads_stay_open(strict_url: str) -> None:
    for path in ("/healthz", "/api/v1/identities", "/api/v1/fleet", "/api/v1/openapi.json"):
        assert requests.get(strict_url + path, timeout=30).status_code == 200, path


def test_guarded_dashboard_takes_basic_auth_or_the_header(strict_url: str) -> None:
    for path in ("/dashboard", "/api/v1/dashboard"):
        r = requests.get(strict_url + path, timeout=30)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert "FACEFLEET_API_KEY" in r.json()["message"]
        wrong = requests.get(strict_url + path, auth=("me", "nope"), timeout=30)
        assert wrong.status_code == 401 and wrong.json()["error"] == "api_key_invalid"
        assert requests.get(strict_url + path, auth=("anyone", API_KEY),
                            timeout=30).status_code == 200, path
        assert requests.get(strict_url + path, headers=KEY, timeout=30).status_code == 200


@pytest.fixture
def dead_settings() -> Settings:
    """Settings aimed at an endpoint where nothing listens (no request here needs AWS)."""
    return replace(Settings.from_env({}), aws_endpoint=f"http://127.0.0.1:{free_port()}")


def _serve(settings: Settings, web: WebSettings) -> Flask:
    return create_app({"FACEFLEET_SETTINGS": settings, "FACEFLEET_WEB": web,
                       "FACEFLEET_DASHBOARD": DashboardSettings(events=False)})


def test_public_bind_without_a_key_closes_only_the_dashboard(dead_settings: Settings) -> None:
    # Served on loopback, but configured as if it listened on every interface.
    app = _serve(dead_settings, WebSettings(bind="0.0.0.0:8000"))
    with serve_in_thread(app) as url:
        for path in ("/dashboard", "/api/v1/dashboard"):
            r = requests.get(url + path, timeout=30)
            assert r.status_code == 403 and r.json()["error"] == "dashboard_closed"
            assert "0.0.0.0:8000" in r.json()["message"]
            assert "FACEFLEET_DASHBOARD_GUARD=off" in r.json()["message"]
        assert requests.get(url + "/api/v1/openapi.json", timeout=30).status_code == 200
        assert requests.get(url + "/", timeout=30).status_code == 200


def test_public_bind_with_a_key_asks_for_it(dead_settings: Settings) -> None:
    app = _serve(replace(dead_settings, api_key="s3cret"), WebSettings(bind=":8000"))
    with serve_in_thread(app) as url:
        assert requests.get(url + "/dashboard", timeout=30).status_code == 401
        assert requests.get(url + "/dashboard", auth=("x", "s3cret"),
                            timeout=30).status_code == 200


def test_guard_off_serves_the_dashboard_anywhere(dead_settings: Settings) -> None:
    app = _serve(dead_settings, WebSettings(bind="0.0.0.0:8000", dashboard_guard="off"))
    with serve_in_thread(app) as url:
        assert requests.get(url + "/dashboard", timeout=30).status_code == 200


def test_key_on_recognitions_without_a_key_refuses_to_start(
        web_stack: WebStack, dead_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION.*"
                                          r"FACEFLEET_API_KEY"):
        _serve(dead_settings, WebSettings(require_key_for_recognition=True))
    # And gunicorn does not come up with it (its worker fails to boot).
    log = tmp_path / "gunicorn.log"
    with pytest.raises(RuntimeError, match="exited"):
        start_gunicorn(web_stack.settings, log, {
            "FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION": "true", "FACEFLEET_API_KEY": ""},
            timeout=30)
    assert "needs FACEFLEET_API_KEY" in log.read_text()


@pytest.mark.parametrize(("bind", "loopback"), [
    ("127.0.0.1:8000", True), ("127.8.0.1:80", True), ("localhost:8000", True),
    ("[::1]:8000", True), ("unix:/run/facefleet.sock", True), ("0.0.0.0:80", False),
    (":8000", False), ("[::]:8000", False), ("10.0.0.5:8000", False),
    ("web.example:80", False)])
def test_is_loopback_bind(bind: str, loopback: bool) -> None:
    assert is_loopback_bind(bind) is loopback
    guard = WebSettings(bind=bind).dashboard_guarded
    assert guard is not loopback
