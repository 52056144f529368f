"""Embedded runner: each instance ``running`` in the embedded EC2 becomes a real Celery
worker process on this machine, and is ended when the instance stops or terminates.

``python -m autoscaler.runner`` polls the EC2 API of the embedded endpoint every
``FACEFLEET_RUNNER_POLL_SECONDS`` for instances with our role tag. A worker is ended
with SIGTERM (Celery's warm shutdown: the task in hand finishes and is acknowledged),
then SIGKILL after ``FACEFLEET_RUNNER_STOP_TIMEOUT``. A failed EC2 read changes
nothing. A worker that exits while its instance is still running is started again
(at most once per second). Workers die with the runner, so a restarted runner simply
starts afresh from EC2's state.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.errors import FleetError
from autoscaler.fleet import Instance
from autoscaler.launchers import Launcher, WorkerHandle

log = logging.getLogger("facefleet.runner")

RESTART_BACKOFF_S = 1.0


@dataclass
class _Worker:
    instance: Instance
    handle: WorkerHandle
    started: float
    stopping_since: float | None = None
    killed: bool = False


@dataclass
class Runner:
    """Keeps one worker per running instance."""

    list_instances: Callable[[], list[Instance]]
    launcher: Launcher
    stop_timeout_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    workers: dict[str, _Worker] = field(default_factory=dict)
    draining: list[_Worker] = field(default_factory=list)
    _last_exit: dict[str, float] = field(default_factory=dict)

    def _end(self, worker: _Worker, why: str) -> None:
        log.info("ending worker %s (pid %d): %s", worker.instance.name, worker.handle.pid, why)
        worker.handle.signal(signal.SIGTERM)
        worker.stopping_since = self.clock()
        self.draining.append(worker)

    def _reap(self) -> None:
        now = self.clock()
        still = []
        for w in self.draining:
            if w.handle.poll() is not None:
                log.info("worker %s (pid %d) exited %s", w.instance.name, w.handle.pid,
                         w.handle.poll())
                continue
            assert w.stopping_since is not None
            if not w.killed and now - w.stopping_since > self.stop_timeout_s:
                log.warning("worker %s did not finish in %.0f s: SIGKILL", w.instance.name,
                            self.stop_timeout_s)
                w.handle.signal(signal.SIGKILL)
                w.killed = True
            still.append(w)
        self.draining = still

    def sync(self) -> None:
        """Match workers to running instances once."""
        self._reap()
        try:
            instances = self.list_instances()
        except FleetError as err:
            log.warning("cannot list instances, keeping workers as they are: %s", err)
            return
        wanted = {i.id: i for i in instances if i.state == "running"}
        for iid, worker in list(self.workers.items()):
            inst = wanted.get(iid)
            if inst is None:
                del self.workers[iid]
                self._end(worker, "instance no longer running")
            elif worker.handle.poll() is not None:
                log.warning("worker %s exited (%s) while its instance runs",
                            worker.instance.name, worker.handle.poll())
                del self.workers[iid]
                self._last_exit[iid] = self.clock()
        now = self.clock()
        for iid, inst in sorted(wanted.items(), key=lambda kv: kv[1].slot):
            if iid in self.workers:
                continue
            if now - self._last_exit.get(iid, -1e9) < RESTART_BACKOFF_S:
                continue
            handle = self.launcher.spawn(inst.name)
            log.info("started worker %s (pid %d) for %s", inst.name, handle.pid, iid)
            self.workers[iid] = _Worker(inst, handle, now)

    def shutdown(self, timeout: float | None = None) -> None:
        """Warm-shut every worker and wait for them (SIGKILL after ``timeout``)."""
        for iid, worker in list(self.workers.items()):
            del self.workers[iid]
            self._end(worker, "runner stopping")
        deadline = self.clock() + (self.stop_timeout_s if timeout is None else timeout)
        while self.draining and self.clock() < deadline:
            self._reap()
            time.sleep(0.05)
        for w in self.draining:
            w.handle.signal(signal.SIGKILL)
            w.handle.poll()
        self.draining = []
        self.launcher.close()

    def run(self, stop: threading.Event, poll_s: float) -> None:
        """Sync every ``poll_s`` seconds until ``stop`` is set, then shut down."""
        try:
            while not stop.is_set():
                self.sync()
                stop.wait(poll_s)
        finally:
            self.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``python -m autoscaler.runner``: run until SIGINT/SIGTERM."""
    import boto3

    from autoscaler.ec2 import Ec2Fleet
    from autoscaler.launchers import CommandLauncher, ForkLauncher
    from config.autoscaler import AutoscalerSettings
    from config.env import ConfigError
    from config.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m autoscaler.runner", description=__doc__)
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="folder for one log file per worker (default: discard)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        scaler = AutoscalerSettings.from_env()
    except ConfigError as err:
        print(f"runner: configuration error: {err}", file=sys.stderr)
        return 2
    if not settings.embedded:
        print("runner: FACEFLEET_AWS_ENDPOINT=aws: on AWS the instances run their own "
              "workers; the runner is for the embedded endpoint only", file=sys.stderr)
        return 2
    fleet = Ec2Fleet(boto3.client("ec2", **settings.boto3_kwargs()), scaler)
    launcher: Launcher
    celery_worker = ["celery", "-A", "tasks", "worker"]
    if scaler.runner_fork:
        if scaler.worker_argv("x", settings.queue)[:4] != celery_worker:
            print(f"runner: FACEFLEET_RUNNER_FORK=true needs a worker command starting with "
                  f"'celery -A tasks worker', not {scaler.worker_command!r}; set "
                  f"FACEFLEET_RUNNER_FORK=false to run any command", file=sys.stderr)
            return 2
        launcher = ForkLauncher(lambda name: scaler.worker_argv(name, settings.queue)[4:],
                                args.log_dir)
    else:
        launcher = CommandLauncher(lambda name: scaler.worker_argv(name, settings.queue),
                                   {"FACEFLEET_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"},
                                   args.log_dir, cwd=Path(os.getcwd()))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("runner up: role %s, poll %.2fs, %s workers", scaler.role, scaler.runner_poll_s,
             "forked" if scaler.runner_fork else "command")
    Runner(fleet.list, launcher, scaler.runner_stop_timeout_s).run(stop, scaler.runner_poll_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
