"""`celery -A tasks ...` on the real app: two real recognizer workers, inspect, status,
and the curses event monitor driven through a terminal (tmux)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from tasks.client import RecognitionClient
from tests.tasks.conftest import ROOT, RunningWorker, start_worker, worker_env
from tests.tasks.transport.conftest import wait_for


@pytest.fixture
def two_workers(settings: Settings, tmp_path: Path) -> Iterator[list[RunningWorker]]:
    """Two `celery -A tasks worker` processes with the model loaded."""
    provision(settings, ServingSettings(), upload_weights=False)
    workers: list[RunningWorker] = []
    try:
        for _ in range(2):
            workers.append(start_worker(settings, tmp_path))
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def node_names(workers: list[RunningWorker]) -> list[str]:
    """Each worker's node name (``test-xxxxxx@host``), read from its log."""
    names = []
    for worker in workers:
        line = next(x for x in worker.log().splitlines() if "@" in x and "ready." in x)
        names.append(line.split("@")[0].split()[-1])
    return names


def celery(settings: Settings, *args: str, timeout: float = 60) -> str:
    """Run ``celery -A tasks ARGS`` aimed at ``settings``; return its output."""
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", *args], cwd=ROOT,
                          env=worker_env(settings), capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc.stdout + proc.stderr


def test_inspect_and_status_on_the_real_app(settings: Settings,
                                            two_workers: list[RunningWorker]) -> None:
    # Broadcasts share the endpoint's SNS topics: other tests' workers (a session stack)
    # may answer too, so look for ours by name.
    names = node_names(two_workers)
    out = celery(settings, "inspect", "ping", "--timeout", "5")
    status = celery(settings, "status", "--timeout", "5")
    for name in names:
        assert f"{name}@" in out, out
        assert f"{name}@" in status, status
    assert "nodes online" in status
    ours = ",".join(f"{name}@{socket.gethostname()}" for name in names)
    registered = celery(settings, "inspect", "registered", "--timeout", "5", "-d", ours)
    assert registered.count("facefleet.recognize") == 2, registered


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_curses_event_monitor_shows_a_task(settings: Settings, tmp_path: Path,
                                           two_workers: list[RunningWorker]) -> None:
    session = f"ffmon-{uuid.uuid4().hex[:8]}"
    env = worker_env(settings)
    exports = " ".join(f"{k}='{v}'" for k, v in env.items()
                       if k.startswith(("FACEFLEET_", "AWS_")) or k == "PYTHONPATH")
    command = f"cd {ROOT} && env {exports} {sys.executable} -m celery -A tasks events"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                    command], check=True)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True, check=False).stdout

        wait_for(lambda: "Workers online" in screen() or "Tasks" in screen(), 60,
                 "the curses monitor to draw")
        time.sleep(2)  # its listener queue is subscribed before it draws
        client = RecognitionClient(settings)
        try:
            jpeg = (ROOT / "webapp" / "static").glob("*.jpg")
            data = next(jpeg, None)
            image = data.read_bytes() if data else _tiny_jpeg()
            request_id = client.submit(image, "probe.jpg")
            client.wait(request_id, timeout=60)
        finally:
            client.close()
        try:
            # The monitor abbreviates names to its 80-column table ("face[.]recognize").
            wait_for(lambda: "recognize" in screen() and "SUCCESS" in screen(), 30,
                     "the recognize task on the monitor's screen")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{screen()}") from None
        assert request_id[:16] in screen()
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
        time.sleep(1)
        subprocess.run(["tmux", "kill-session", "-t", session], check=False,
                       capture_output=True)


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(buf, "JPEG")
    return buf.getvalue()
