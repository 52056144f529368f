"""gunicorn settings for the web tier, from ``config.web.WebSettings`` (environment).

    gunicorn -c webapp/gunicorn_conf.py 'webapp:create_app()'

gthread workers: every request that awaits a worker's result holds one thread while it
sleeps on S3/SQS, so at least 100 such requests need well over 100 threads (default
160, ``FACEFLEET_WEB_THREADS``). Beyond ``FACEFLEET_WEB_MAX_WAITING`` the app answers
503 + Retry-After instead of letting requests queue silently. More options can be
added with ``GUNICORN_CMD_ARGS`` (e.g. ``--access-logfile -``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# gunicorn execs this file by path; make the project importable from any cwd.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from config import redaction  # noqa: E402
from config.web import WebSettings  # noqa: E402

_web = WebSettings.from_env()
# The master's own lines too (its config dump, worker boot errors); the app installs it
# again in each worker, with the key from its settings.
redaction.install()

bind = _web.bind
worker_class = "gthread"
workers = _web.workers
threads = _web.threads
# Connections a gthread worker keeps open (idle keep-alive ones included).
worker_connections = max(1000, 4 * _web.threads)
backlog = 2048
# Heartbeat timeout of a worker process, not a request deadline (requests end at
# FACEFLEET_RESULT_TIMEOUT with a 504).
timeout = 120
graceful_timeout = 30
keepalive = 5
proc_name = "facefleet-web"


def post_worker_init(worker: object) -> None:
    """Open the task client's connections before the first request arrives."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("facefleet")
    if services is not None:
        services.warm()
