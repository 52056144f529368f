"""Start the serving path for the web tier's tests: real Celery worker subprocesses and
the web tier under gunicorn (with ``webapp/gunicorn_conf.py``) or under Werkzeug's
server in a thread, all on free loopback ports, against moto's server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from deploy.embedded_aws import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WebStack:
    """A running web tier (``url``) over workers, and what the tests enrolled."""

    url: str
    settings: Settings
    enrolled: dict[str, list[bytes]] = field(default_factory=dict)
    sample: tuple[str, bytes] = ("", b"")


def child_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``settings`` (and ``extra``) for a child."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env.update(extra or {})
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_worker(settings: Settings, log_path: Path, name: str,
                 extra: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``celery -A tasks worker`` (solo pool, one process) for ``settings``."""
    cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "solo",
           "--loglevel", "INFO", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=child_env(settings, extra), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def start_gunicorn(settings: Settings, log_path: Path,
                   extra: Mapping[str, str] | None = None,
                   timeout: float = 60.0,
                   port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The web tier under gunicorn on ``port`` (default: a free one); returns
    (process, base URL). Give the port of a stopped one to restart it in its place."""
    port = port or free_port()
    env = child_env(settings, {"FACEFLEET_WEB_BIND": f"127.0.0.1:{port}", **(extra or {})})
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "webapp" / "gunicorn_conf.py"),
           "webapp:create_app()"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", timeout, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc, url


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers with any HTTP status; raise if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve a Flask ``app`` with Werkzeug's threaded server; yield its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        app.extensions["facefleet"].close()
