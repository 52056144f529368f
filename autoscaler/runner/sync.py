"""Keep one worker process per running instance: start, restart, drain and end them.

:class:`Runner` is the runner's loop (see :mod:`autoscaler.runner`): it reads the
instances, starts a worker through its launcher for each running one, and ends the
worker of an instance that stopped like an instance's shutdown would: drained first
(:mod:`tasks.drain`), then SIGTERM (Celery's warm shutdown: the task in
hand finishes and is acknowledged), then SIGKILL after the stop timeout. A failed EC2
read changes nothing. A worker that exits while its instance is still running is
started again (at most once per second).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autoscaler.errors import FleetError
from autoscaler.fleet import Instance
from autoscaler.runner.launchers import Launcher, WorkerHandle

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
    #: Tells the workers of these instance names to stop consuming (tasks.drain).
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
