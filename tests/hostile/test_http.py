"""The hostile corpus over real HTTP: gunicorn, moto's server and real Celery workers
(the session's ``web_stack``). Every case gets its refusal with its real cause,
nothing of a refused upload is stored, no refused enrolment changes the gallery, and a
normal client sending photos all along is answered every time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
import requests

from config import aws
from config.settings import Settings
from config.web import WebSettings
from deploy.embedded_aws import free_port
from recognition.weights.sdist import celebrity_dataset
from tests.hostile import inputs, wire
from tests.hostile.corpus import CASES, RECOGNITIONS, Case, multipart
from tests.webapp.fixtures import API_KEY
from tests.webapp.stack import WebStack, serve_in_thread
from webapp import create_app

MB60 = 60 * 1000 * 1000


@dataclass
class NormalClient:
    """Someone else using the service meanwhile: a small photo every 0.2 s."""

    url: str
    answers: list[tuple[int, float]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        photo = inputs.small_png()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                r = requests.post(self.url + RECOGNITIONS,
                                  files={"image": ("normal.png", photo)}, timeout=60)
                status = r.status_code
                if status == 200:
                    self.request_ids.append(r.json()["request_id"])
            except requests.RequestException:
                status = 0
            self.answers.append((status, time.monotonic() - started))
            self.stop.wait(0.2)

    def wait_for(self, answers: int, timeout: float = 90.0) -> None:
        """Block until this client has had ``answers`` answers."""
        deadline = time.monotonic() + timeout
        while len(self.answers) < answers and time.monotonic() < deadline:
            time.sleep(0.1)

    def check(self, at_least: int) -> None:
        """Every request was answered 200, in reasonable time."""
        assert len(self.answers) >= at_least, self.answers
        assert all(status == 200 for status, _ in self.answers), self.answers
        assert max(seconds for _, seconds in self.answers) < 20, self.answers


@pytest.fixture
def normal_client(web_stack: WebStack) -> Iterator[NormalClient]:
    """A NormalClient running in a thread for the length of the test."""
    client = NormalClient(web_stack.url)
    thread = threading.Thread(target=client.run, name="normal-client", daemon=True)
    thread.start()
    try:
        yield client
    finally:
        client.stop.set()
        thread.join(90)


def _send(url: str, case: Case) -> requests.Response:
    headers = {"X-API-Key": API_KEY} if case.api_key else {}
    if case.method == "GET":
        return requests.get(url + case.path, headers=headers, timeout=60)
    body, content_type = multipart(case.parts())
    return requests.post(url + case.path, data=body,
                         headers={**headers, "Content-Type": content_type}, timeout=120)


def _mismatch(case: Case, r: requests.Response) -> str | None:
    """What is wrong with ``r`` as the answer to ``case`` (None: it is right)."""
    if r.status_code != case.status:
        return f"status {r.status_code}, expected {case.status}: {r.text[:300]}"
    if "Traceback" in r.text:
        return "a traceback in the body"
    if case.plain_text:
        if not r.headers["Content-Type"].startswith("text/plain"):
            return f"Content-Type {r.headers['Content-Type']}"
        message = r.text
    else:
        body = r.json()
        if case.code and body.get("error") != case.code:
            return f"code {body.get('error')!r}, expected {case.code!r}: {body}"
        message = body.get("message", "")
    if case.fragment not in message:
        return f"{case.fragment!r} not in {message!r}"
    return None


def _keys(s3: object, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_corpus_is_refused_with_its_cause_and_nothing_is_stored(
        web_stack: WebStack, normal_client: NormalClient) -> None:
    assert len(CASES) >= 30
    normal_client.wait_for(1)  # warm: the first answer is no slower than the rest
    settings = web_stack.settings
    s3 = aws.client(settings, "s3")
    inputs_before = _keys(s3, settings.input_bucket)
    outputs_before = _keys(s3, settings.output_bucket)
    gallery_before = requests.get(web_stack.url + "/api/v1/identities", timeout=30).json()

    wrong = {}
    for case in CASES:
        mismatch = _mismatch(case, _send(web_stack.url, case))
        if mismatch is not None:
            wrong[case.name] = mismatch
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())

    normal_client.wait_for(len(normal_client.answers) + 2)
    normal_client.stop.set()
    time.sleep(1)  # its last request finishes
    normal_client.check(at_least=3)
    # Only the normal client's requests left objects behind.
    mine = set(normal_client.request_ids)
    new_inputs = _keys(s3, settings.input_bucket) - inputs_before
    assert {key.split("/", 1)[0] for key in new_inputs} <= mine, new_inputs
    new_outputs = _keys(s3, settings.output_bucket) - outputs_before
    assert all(key == "normal" or key.rsplit("-", 1)[-1] in mine for key in new_outputs), \
        new_outputs
    gallery_after = requests.get(web_stack.url + "/api/v1/identities", timeout=30).json()
    assert gallery_after == gallery_before


@pytest.mark.parametrize("path", ["/", RECOGNITIONS, "/api/v1/identities/Paul/images"])
def test_a_declared_60_mb_body_is_refused_before_it_is_sent(web_stack: WebStack,
                                                            path: str) -> None:
    headers = f"X-API-Key: {API_KEY}\r\n"
    line, seconds = wire.declared_but_not_sent(web_stack.url, path, MB60, headers=headers)
    assert line.startswith("HTTP/1.1 413"), line
    assert seconds < 5


def test_an_endless_chunked_body_is_cut_at_the_limit(web_stack: WebStack) -> None:
    line, sent = wire.endless_chunks(web_stack.url, RECOGNITIONS)
    assert line.startswith("HTTP/1.1 413"), line
    assert sent < 20 * 2**20  # stopped near the 10 MB limit, not at 60 MB


def test_slowloris_does_not_stop_others_being_answered(
        web_stack: WebStack, normal_client: NormalClient) -> None:
    # 40 connections dribbling headers for 6 s: fewer than the server's threads (160),
    # bounded in time, loopback only.
    result: list[int] = []
    slow = threading.Thread(target=lambda: result.append(
        wire.dribble_headers(web_stack.url, connections=40, seconds=6.0)))
    slow.start()
    answered = []
    time.sleep(0.5)
    while slow.is_alive():
        started = time.monotonic()
        r = requests.get(web_stack.url + "/healthz", timeout=10)
        answered.append((r.status_code, time.monotonic() - started))
        time.sleep(0.3)
    slow.join()
    assert result and answered
    assert all(status == 200 and seconds < 2 for status, seconds in answered), answered
    normal_client.wait_for(2)
    normal_client.stop.set()
    time.sleep(1)
    normal_client.check(at_least=2)


def test_a_name_differing_only_in_case_is_refused(web_stack: WebStack) -> None:
    photos = sorted((celebrity_dataset(web_stack.settings.cache_dir) / "train"
                     / "madonna").iterdir())[:1]
    base = web_stack.url + "/api/v1/identities"
    key = {"X-API-Key": API_KEY}
    files = {"image": (photos[0].name, photos[0].read_bytes())}
    r = requests.post(base + "/Hostile Twin/images", files=files, headers=key, timeout=180)
    assert r.status_code == 201, r.text
    try:
        r = requests.post(base + "/hostile twin/images", files=files, headers=key,
                          timeout=180)
        assert r.status_code == 409 and r.json()["error"] == "name_lookalike", r.text
        assert "'Hostile Twin'" in r.json()["message"]
        names = [i["name"] for i in requests.get(base, timeout=30).json()["identities"]]
        assert "hostile twin" not in names
    finally:
        requests.delete(base + "/Hostile Twin", headers=key, timeout=30)


@pytest.fixture(scope="module")
def dead_url() -> Iterator[str]:
    """The web tier aimed at an AWS endpoint where nothing listens: any S3 call is 503."""
    settings = replace(Settings.from_env({}), aws_endpoint=f"http://127.0.0.1:{free_port()}")
    app = create_app({"FACEFLEET_SETTINGS": settings, "FACEFLEET_WEB": WebSettings()})
    with serve_in_thread(app) as url:
        yield url


def test_malformed_ids_are_404_without_touching_s3(dead_url: str) -> None:
    for request_id in ["0" * 31, "A" * 32, "..%2Fresults", "a" * 3000, "0" * 31 + "%0A"]:
        r = requests.get(f"{dead_url}{RECOGNITIONS}/{request_id}", timeout=30)
        assert r.status_code == 404, (request_id, r.text)
    # A well-formed id has to be looked up: here that means the unreachable endpoint.
    r = requests.get(f"{dead_url}{RECOGNITIONS}/{'0' * 32}", timeout=60)
    assert r.status_code == 503
