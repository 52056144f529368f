"""moto's server app, served for speed: the embedded AWS endpoint.

    python -m deploy.moto_server -H 127.0.0.1 -p 5055

Same app and same in-memory state as ``python -m moto.server``, served differently.
On one machine moto shares the cores with the web tier and the workers, so its CPU per
call is taken straight out of recognition. Under the stack's mix of S3 and SQS calls,
stock ``moto.server`` spends its CPU on (figures in docs/benchmarks.md):

* resolving the service for each request: ``host in
  list_of_moto_modules()`` lists moto's package folder and ``stat``s some 200 entries,
  under the dispatcher's global lock. The answer only depends on the host string, so
  it is memoised here.
* a new TCP connection and a new thread per call: werkzeug's development server
  always answers ``Connection: close``. gunicorn's ``gthread`` worker keeps
  connections alive and parks idle ones in its poller, off the thread pool.
* Flask debug helpers on every request (moto switches debug on); switched off here.
* moto's SQS clock: it builds datetimes for every message on every receive, so a
  deep queue made each call cost tens of milliseconds (:mod:`deploy.moto_sqs`), which
  also gives each queue the lock that stops concurrent calls losing a message.

With ``--call-log FILE`` every signed request is also written to FILE as one JSON line
(who signed it, the IAM action, the resource: :mod:`deploy.iam_audit`), the record the
least-privilege tests check the IAM policies against.

State lives in one process: gunicorn runs exactly one worker, never recycles it
(``max_requests`` 0) and never times it out (``timeout`` 0), because a restarted
worker would come back with every bucket and queue gone. SQS long polls hold a thread
for up to 20 s each, so the pool is large. No library serves moto this way: moto's own
``ThreadedMotoServer`` is the same werkzeug development server.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from deploy import moto_sqs
from deploy.iam_audit import describe_request

#: Threads serving requests; each SQS long poll holds one for up to 20 s.
THREADS = 512


def make_app() -> Any:
    """moto's dispatcher with the service lookup memoised, debug off, SQS patched."""
    moto_sqs.patch()

    def create_quiet_app(service: Any) -> Any:
        app = create_backend_app(service)
        app.debug = False
        return app

    class MemoDispatcher(DomainDispatcherApplication):
        """Resolves each distinct host string to its backend once."""

        def __init__(self) -> None:
            super().__init__(create_quiet_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under self.lock; the answer depends on the host string and the
            # installed moto only.
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return MemoDispatcher()


class CallLog:
    """WSGI middleware: each signed request as a :class:`deploy.iam_audit.Call` line."""

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        # One handle for the server's life, a line per call (flushed as written, so a
        # test reads every call made so far): no open() on each request.
        self._log = path.open("a", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        headers = {key[5:].replace("_", "-").title(): value
                   for key, value in environ.items() if key.startswith("HTTP_")}
        query = environ.get("QUERY_STRING", "")
        url = environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
        call = describe_request(environ["REQUEST_METHOD"], url, headers, body)
        if call is not None:
            with self._lock:
                self._log.write(call.to_json() + "\n")
        return self.app(environ, start_response)


def serve(host: str, port: int, threads: int = THREADS, call_log: Path | None = None
          ) -> None:
    """Serve moto on ``host:port`` until SIGTERM/SIGINT (gunicorn's arbiter handles them)."""
    # moto builds some URLs (e.g. SQS queue URLs) from this, as its own server does.
    os.environ.setdefault("MOTO_PORT", str(port))

    class MotoApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": [f"{host}:{port}"], "workers": 1, "worker_class": "gthread",
                "threads": threads, "worker_connections": 4096, "keepalive": 75,
                "timeout": 0, "graceful_timeout": 2, "max_requests": 0,
                "accesslog": None, "loglevel": "warning", "proc_name": "facefleet-moto",
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            app = make_app()
            return app if call_log is None else CallLog(app, call_log)

    MotoApplication().run()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (the same -H/-p as ``moto.server``)."""
    parser = argparse.ArgumentParser(prog="python -m deploy.moto_server",
                                     description="moto's server on a keep-alive WSGI server")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("-p", "--port", type=int, default=5055, help="port to bind")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="request threads (each SQS long poll holds one)")
    parser.add_argument("--call-log", type=Path, default=None,
                        help="append every signed request (key, IAM action, resource) here")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1..65535, got {args.port}")
    if args.threads < 8:
        parser.error(f"--threads must be at least 8, got {args.threads}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and serve."""
    args = parse_args(argv)
    serve(args.host, args.port, args.threads, args.call_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
