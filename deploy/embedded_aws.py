"""Start and stop moto's server, the embedded AWS endpoint, on loopback.

The server is :mod:`deploy.moto_server`: moto's own app on a keep-alive gunicorn
worker. State lives in memory only, so everything it holds is lost when it stops.
Callers own the process and end it by its PID; it dies with its starter anyway.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from config.errors import FacefleetError
from deploy.lifetime import child_setup

#: Where ``python -m deploy.moto_server`` resolves.
REPO_ROOT = Path(__file__).resolve().parents[1]


class EmbeddedAwsError(FacefleetError):
    """moto's server did not start or did not answer in time."""

    default_code = "embedded_aws"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(url: str, timeout: float = 0.5) -> bool:
    """True when an HTTP server answers at ``url`` (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def start_moto(
    port: int, host: str = "127.0.0.1", log_path: Path | None = None,
    timeout: float = 30.0, cpus: frozenset[int] | None = None, call_log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start moto's server (:mod:`deploy.moto_server`) on ``host:port``; wait until it answers.

    Raises EmbeddedAwsError (after ending the process) if it does not answer within
    ``timeout`` seconds, e.g. because the port is taken. ``cpus`` pins it to those CPUs;
    ``call_log`` records every signed request (:mod:`deploy.iam_audit`). The server gets
    SIGTERM when this process dies (:func:`deploy.lifetime.child_setup`).
    """
    url = f"http://{host}:{port}"
    if is_listening(url):
        raise EmbeddedAwsError(f"port {port} is already in use; is another stack running?")
    cmd = [sys.executable, "-m", "deploy.moto_server", "-H", host, "-p", str(port)]
    if call_log is not None:
        cmd += ["--call-log", str(call_log)]
    if log_path is None:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO_ROOT,
                                preexec_fn=child_setup(cpus))
    else:
        # The child keeps its own descriptor; ours is closed as soon as it starts.
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=REPO_ROOT,
                                    preexec_fn=child_setup(cpus))
    try:
        _wait_answers(proc, url, timeout)
    except BaseException:  # too slow, or interrupted (Ctrl-C): the caller never sees it
        stop_process(proc)
        raise
    return proc


def _wait_answers(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedAwsError(f"moto's server exited with status {proc.returncode}")
        if is_listening(url + "/moto-api/"):
            return
        time.sleep(0.1)
    raise EmbeddedAwsError(f"moto's server did not answer on {url} within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate ``proc`` (by its PID), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
