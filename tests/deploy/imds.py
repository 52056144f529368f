"""A stand-in EC2 instance metadata service (IMDSv2) on loopback, for the node tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from deploy.embedded_aws import free_port

TOKEN = "t0k3n"


def handler_for(paths: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    """IMDSv2: PUT a token, then GET with it; 401 without. ``paths`` is what exists."""

    class FakeImds(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            if self.path == "/latest/api/token" and \
                    self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                self._answer(200, TOKEN)
            else:
                self._answer(400, "")

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                self._answer(401, "")
            elif self.path in paths:
                self._answer(200, paths[self.path])
            else:
                self._answer(404, "")

        def _answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    return FakeImds


@contextmanager
def serve_imds(paths: dict[str, str]) -> Iterator[str]:
    """Serve ``paths`` (mutable: tests add a spot notice later) and yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler_for(paths))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def named_instance(name: str) -> dict[str, str]:
    """The metadata of an instance whose Name tag is ``name``."""
    return {"/latest/meta-data/tags/instance/Name": name}
