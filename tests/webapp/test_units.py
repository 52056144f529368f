"""Pure units of the web tier: upload validation, identity names, the fleet fields."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from autoscaler.errors import StateError
from autoscaler.state import parse_state
from tasks.errors import TaskFailed
from webapp.errors import ApiError, task_failed
from webapp.fleet import fleet_fields, unpublished
from webapp.uploads import validate_identity_name, validate_image


def _png(width: int = 8, height: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def test_validate_image_accepts_png() -> None:
    upload = validate_image(_png(), "a.png", field="image", max_bytes=10_000, max_pixels=100)
    assert (upload.width, upload.height, upload.format, upload.stem) == (8, 6, "PNG", "a")


@pytest.mark.parametrize(("data", "max_bytes", "max_pixels", "status", "code"), [
    (b"", 10_000, 100, 400, "empty_file"),
    (b"hello, I am text renamed .jpg", 10_000, 100, 400, "not_an_image"),
    (_png(), 10, 100, 413, "too_large"),
    (_png(20, 20), 10_000, 100, 413, "too_many_pixels"),
])
def test_validate_image_refuses(data: bytes, max_bytes: int, max_pixels: int, status: int,
                                code: str) -> None:
    with pytest.raises(ApiError) as info:
        validate_image(data, "x.jpg", field="image", max_bytes=max_bytes, max_pixels=max_pixels)
    assert (info.value.status, info.value.code) == (status, code)
    assert "x.jpg" in info.value.message


@pytest.mark.parametrize("name", ["Paul", "Mary-Jane O.Neil", "a", "x" * 64, "r2_d2"])
def test_identity_names_allowed(name: str) -> None:
    assert validate_identity_name(name) == name


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "a/b", "bob;drop", "名前", " Paul",
                                  "Unknown", "noface"])
def test_identity_names_refused(name: str) -> None:
    with pytest.raises(ApiError) as info:
        validate_identity_name(name)
    assert info.value.status == 400


def test_fleet_state_parsed_and_aged() -> None:
    raw = json.dumps({"updated": 100.0, "desired": 3, "max": 15, "version": 1,
                      "instances": [{"id": "i-1", "state": "running", "since": 0.0}],
                      "decisions": [{"desired": d} for d in range(80)]}).encode()
    state = fleet_fields(parse_state(raw), now=110.0, stale_after=30.0)
    assert (state["desired"], state["max"], len(state["instances"])) == (3, 15, 1)
    assert len(state["decisions"]) == 50 and state["decisions"][-1] == {"desired": 79}
    assert state["autoscaler"]["age_s"] == 10.0 and not state["autoscaler"]["stale"]
    assert state["autoscaler"]["controller"] == {"version": 1}
    assert state["instances"][0]["launch_time"] == "1970-01-01T00:00:00Z"
    assert fleet_fields(parse_state(raw), now=200.0, stale_after=30.0)["autoscaler"]["stale"]


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"desired": 1}',
                                 b'{"updated": "yesterday"}',
                                 b'{"updated": 1, "instances": {}}'])
def test_fleet_state_refuses_bad_objects(raw: bytes) -> None:
    with pytest.raises(StateError):
        parse_state(raw)


def test_unpublished_has_placeholders() -> None:
    state = unpublished("none yet")
    assert state["instances"] == [] and state["desired"] is None and state["max"] is None
    assert state["autoscaler"] == {"published": False, "reason": "none yet"}


@pytest.mark.parametrize(("kind", "code", "status", "retry_after"), [
    ("BadImage", "truncated", 400, None),            # the image's fault: change it
    ("PoisonMessage", "dead_letter", 502, None),     # tried max_receives times
    ("StorageError", "storage_unreachable", 503, "2"),  # transient: send it again
    ("TaskRevokedError", "TaskRevokedError", 503, "1"),  # expired unrun: send it again
])
def test_stored_failures_say_whether_to_retry(kind: str, code: str, status: int,
                                              retry_after: str | None) -> None:
    err = task_failed(TaskFailed("it failed", code, kind=kind))
    assert err.status == status and err.headers.get("Retry-After") == retry_after
