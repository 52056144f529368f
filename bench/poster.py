"""POST one image as multipart form data with the standard library's ``http.client``.

Why not ``requests`` here: a load generator on the same machine as the stack takes its
CPU from the stack it measures. bench.overload sends 30-50 requests a second in its open
loop, each on a new connection; ``requests.post`` cost 1.3-1.5 ms of client CPU per call
against 0.4 ms for ``http.client`` (the same upload to a trivial server, 2026-12-02), and
the sampled overload runs left the workers 0.1-0.3 cores less than the capacity phase
did. The multipart body comes from urllib3 (``encode_multipart_formdata``), the library
``requests`` itself builds it with.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3 import encode_multipart_formdata

#: What a failed POST raises: refused or reset connections, timeouts, bad responses.
POST_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Answer:
    """A response: status, body as text, and its ``Retry-After`` header (or None)."""

    status: int
    text: str
    retry_after: str | None


class Poster:
    """Posts to one URL over one HTTP/1.1 connection, opened on first use and again
    after any failure (a closed-loop client keeps it alive, like a browser)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// URL")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, field: str, filename: str, data: bytes) -> Answer:
        """Send ``data`` as the file ``filename`` of form field ``field``; raises one of
        :data:`POST_ERRORS` when no answer came (the connection is then dropped)."""
        body, content_type = encode_multipart_formdata({field: (filename, data)})
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port,
                                                    timeout=self.timeout)
        try:
            self._conn.request("POST", self.path, body=body,
                               headers={"Content-Type": content_type})
            response = self._conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except POST_ERRORS:
            self.close()
            raise
        if response.will_close:
            self.close()
        return Answer(response.status, text, response.getheader("Retry-After"))

    def close(self) -> None:
        """Close the connection (the next post opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def post_once(url: str, field: str, filename: str, data: bytes, timeout: float) -> Answer:
    """One POST on a connection of its own (an open-loop client)."""
    poster = Poster(url, timeout)
    try:
        return poster.post(field, filename, data)
    finally:
        poster.close()
