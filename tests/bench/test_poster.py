"""The load generator's HTTP client against a real HTTP server on loopback."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.wrappers import Request

from bench.poster import POST_ERRORS, Poster, post_once


class Upload(BaseHTTPRequestHandler):
    """Answers a multipart upload of form field ``inputFile`` with ``<name>:<bytes>``, or
    503 + Retry-After when the file says ``full``; HTTP/1.1 keeps connections open, as
    gunicorn does."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": self.headers["Content-Type"],
                   "CONTENT_LENGTH": str(length),
                   "wsgi.input": io.BytesIO(self.rfile.read(length))}
        with Request(environ) as request:
            sent = request.files["inputFile"]
            data, filename = sent.read(), sent.filename
        if data == b"full":
            self._answer(503, b"Error 503: 144 requests are already waiting",
                         {"Retry-After": "2"})
        else:
            self._answer(200, f"{filename}:{len(data)}".encode(), {})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Upload)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_a_file_arrives_as_the_form_field_with_its_name(server: str) -> None:
    answer = post_once(server, "inputFile", "test_007.jpg", b"\xff\xd8" * 500, timeout=5)
    assert (answer.status, answer.text, answer.retry_after) == (200, "test_007.jpg:1000",
                                                                None)


def test_a_refusal_keeps_its_status_and_retry_after(server: str) -> None:
    answer = post_once(server, "inputFile", "a.jpg", b"full", timeout=5)
    assert answer.status == 503 and answer.retry_after == "2"
    assert "already waiting" in answer.text


def test_a_client_reuses_its_connection_and_reconnects_after_a_failure(server: str) -> None:
    poster = Poster(server, timeout=5)
    try:
        assert poster.post("inputFile", "a.jpg", b"1").status == 200
        first = poster._conn
        assert poster.post("inputFile", "b.jpg", b"22").text == "b.jpg:2"
        assert poster._conn is first  # kept alive
        assert first is not None
        first.sock.close()  # the server side of a dropped keep-alive looks like this
        with pytest.raises(POST_ERRORS):
            poster.post("inputFile", "c.jpg", b"333")
        assert poster.post("inputFile", "d.jpg", b"4444").text == "d.jpg:4"
    finally:
        poster.close()


def test_nothing_listening_is_an_error_not_an_answer() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Upload)
    port = srv.server_port
    srv.server_close()
    with pytest.raises(POST_ERRORS):
        post_once(f"http://127.0.0.1:{port}/", "inputFile", "a.jpg", b"x", timeout=2)


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http:// URL"):
        Poster("https://example.com/", timeout=1)
