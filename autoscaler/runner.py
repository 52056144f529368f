"""Embedded runner: each instance ``running`` in the embedded EC2 becomes a real Celery
worker process on this machine, and is ended when the instance stops or terminates.

``python -m autoscaler.runner`` polls the EC2 API of the embedded endpoint every
``FACEFLEET_RUNNER_POLL_SECONDS`` for instances with our role tag. A worker is ended
like an instance's shutdown would end it: first told to stop consuming the request
queue and given the SQS long-poll wait to let an open poll return (see
``autoscaler.drain``: a message handed to the poll of an exited worker would stay in
flight for the whole visibility timeout), then SIGTERM (Celery's warm shutdown: the
task in hand finishes and is acknowledged), then SIGKILL after
``FACEFLEET_RUNNER_STOP_TIMEOUT``. A failed EC2 read changes
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
    term_at: float | None = None         # when SIGTERM is due (after the drain)
    stopping_since: float | None = None  # when SIGTERM was sent
    killed: bool = False


@dataclass
class Runner:
    """Keeps one worker per running instance."""

    list_instances: Callable[[], list[Instance]]
    launcher: Launcher
    stop_timeout_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    #: Tells the workers of these instance names to stop consuming (autoscaler.drain).
    drain: Callable[[list[str]], bool] | None = None
    #: Seconds between the drain and SIGTERM (the SQS long-poll wait plus a margin).
    drain_s: float = 0.0
    workers: dict[str, _Worker] = field(default_factory=dict)
    draining: list[_Worker] = field(default_factory=list)
    _last_exit: dict[str, float] = field(default_factory=dict)

    def _end(self, workers: list[_Worker], why: str) -> None:
        """Drain ``workers`` (one broadcast), SIGTERM each once its drain is over."""
        if not workers:
            return
        drained = False
        if self.drain is not None and self.drain_s > 0:
            drained = self.drain([w.instance.name for w in workers])
        for worker in workers:
            log.info("ending worker %s (pid %d): %s%s", worker.instance.name,
                     worker.handle.pid, why,
                     f"; draining {self.drain_s:g} s first" if drained else "")
        now = self.clock()
        for worker in workers:
            worker.term_at = now + (self.drain_s if drained else 0.0)
            self.draining.append(worker)
        self._reap()

    def _reap(self) -> None:
        now = self.clock()
        still = []
        for w in self.draining:
            if w.handle.poll() is not None:
                log.info("worker %s (pid %d) exited %s", w.instance.name, w.handle.pid,
                         w.handle.poll())
                continue
            if w.stopping_since is None:
                if w.term_at is not None and now >= w.term_at:
                    w.handle.signal(signal.SIGTERM)
                    w.stopping_since = now
                still.append(w)
                continue
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
        leaving = []
        for iid, worker in list(self.workers.items()):
            inst = wanted.get(iid)
            if inst is None:
                del self.workers[iid]
                leaving.append(worker)
            elif worker.handle.poll() is not None:
                log.warning("worker %s exited (%s) while its instance runs",
                            worker.instance.name, worker.handle.poll())
                del self.workers[iid]
                self._last_exit[iid] = self.clock()
        self._end(leaving, "instance no longer running")
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
        """Drain and warm-shut every worker and wait for them (SIGKILL after the drain
        plus ``timeout``)."""
        workers = list(self.workers.values())
        self.workers.clear()
        self._end(workers, "runner stopping")
        deadline = self.clock() + self.drain_s + (
            self.stop_timeout_s if timeout is None else timeout)
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

    from autoscaler.drain import CeleryDrainer
    from autoscaler.ec2 import Ec2Fleet
    from autoscaler.launchers import CommandLauncher, ForkLauncher
    from config.autoscaler import AutoscalerSettings
    from config.env import ConfigError
    from config.serving import ServingSettings
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
        serving = ServingSettings.from_env()
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
    from tasks import app  # the workers' app (imported by the fork launcher already)

    drain_s = scaler.runner_drain_s
    if drain_s is None:  # an open long poll returns within the SQS wait
        drain_s = serving.wait_time_seconds + 1.0
    runner = Runner(fleet.list, launcher, scaler.runner_stop_timeout_s,
                    drain=CeleryDrainer(app, settings.queue), drain_s=drain_s)
    log.info("runner up: role %s, poll %.2fs, %s workers, drain %.1fs", scaler.role,
             scaler.runner_poll_s, "forked" if scaler.runner_fork else "command", drain_s)
    runner.run(stop, scaler.runner_poll_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
