"""The web tier dies under load and comes back: clients that follow the documented
contract (bench/client.py, docs/reliability.md) lose nothing and get nothing wrong.

A small ``bench.faults`` ``web-restart``: real CSE546 images through the JSON API by a
few concurrent clients, while the web tier (gunicorn, master and workers) is SIGKILLed
and started again on the same address -- a crash followed by what the stack's
supervisor, or systemd's ``Restart=always``, does. Killed rather than stopped, so that
requests in flight lose their connections and must be sent again, not merely new ones
refused. The workers, the queue and the enrolled gallery are the session's web stack;
the killed web tier is one of this test's own. (The stack's supervisor restarting a
dead service is tests/deploy/test_orphans.py's.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import requests

from bench.client import Attempted, classify, recognise
from bench.workload import load_images, load_labels
from deploy.embedded_aws import stop_process
from deploy.lifetime import is_running, start_time
from tests.webapp.stack import WebStack, start_gunicorn

#: Requests and concurrent clients: small, but enough that some are in flight when
#: the web tier dies and some are sent while it is down.
REQUESTS = 24
CLIENTS = 4
#: The web tier dies once this many requests are answered.
KILL_AFTER = REQUESTS // 3
#: Each request's whole budget through the client (resends included), and the test's.
BUDGET_S = 60.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` now (gunicorn's worker processes)."""
    found: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in path.read_text().split()]
    return found


def _kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its children, each by PID, and wait until all are gone (the
    listening socket lives as long as any of them). Returns the PIDs killed."""
    procs = [(p, start_time(p)) for p in [pid, *_children(pid)]]
    for p, _ in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while any(is_running(p, started) for p, started in procs):
        assert time.monotonic() < deadline, "the killed web tier did not go away"
        time.sleep(0.05)
    return [p for p, _ in procs]


def test_clients_ride_out_a_web_tier_crash_and_restart(enrolled_stack: WebStack,
                                                       cse546_dir: Path,
                                                       tmp_path: Path) -> None:
    images = load_images(cse546_dir / "face_images_1000.zip")[:REQUESTS]
    labels = load_labels(cse546_dir / "labels_1000.csv")
    log = tmp_path / "gunicorn.log"
    web, url = start_gunicorn(enrolled_stack.settings, log)
    port = urlsplit(url).port
    assert port is not None
    local = threading.local()

    def one(index: int) -> Attempted:
        # A keep-alive session per client, as a real one: after the crash its pooled
        # connection is dead, which the client must ride out too.
        if not hasattr(local, "session"):
            local.session = requests.Session()
        name, data = images[index]
        return recognise(local.session, url, name, data, labels[PurePosixPath(name).stem],
                         budget=BUDGET_S, timeout=30)

    outcomes: list[Attempted] = []
    killed: list[int] = []
    restarted_at = down_s = 0.0
    try:
        with ThreadPoolExecutor(CLIENTS, thread_name_prefix="client") as pool:
            futures = [pool.submit(one, i) for i in range(REQUESTS)]
            for future in as_completed(futures, timeout=BUDGET_S + 60):
                outcomes.append(future.result())
                if len(outcomes) == KILL_AFTER:
                    # The clients keep sending meanwhile: into a dead address.
                    started = time.monotonic()
                    killed = _kill_tree(web.pid)
                    web.wait(10)
                    web, restarted = start_gunicorn(enrolled_stack.settings, log, port=port)
                    assert restarted == url
                    restarted_at = time.monotonic()
                    down_s = restarted_at - started
    finally:
        stop_process(web, timeout=40)  # the running one (restarted or not): gracefully

    assert killed, f"only {len(outcomes)} of {REQUESTS} answered: the web tier never died"
    assert len(outcomes) == REQUESTS
    kinds = [classify(o) for o in outcomes]
    wrong = [(o.image, o.status, o.label, o.expected, o.error) for o, kind
             in zip(outcomes, kinds, strict=True) if kind != "correct"]
    # Every request answered with its true label: none lost, none wrong, none gave up.
    assert wrong == [], wrong
    # The crash hit someone: requests cut in flight or refused while it was down were
    # sent again (a test where no client noticed would prove nothing).
    resent = [o for o in outcomes if o.attempts > 1]
    assert resent, f"no request was sent twice (down for {down_s:.1f} s)"
    assert any(o.finished > restarted_at for o in resent)
    print(f"web tier down {down_s:.1f} s; {len(resent)} of {REQUESTS} requests resent, "
          f"at most {max(o.attempts for o in outcomes)} attempts")
