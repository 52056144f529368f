"""A background thread of the web process that consumes Celery events over the SQS+SNS
transport (``tasks.transport``) into an
:class:`~webapp.dashboard.stats.EventAggregate`.

Lifecycle (one monitor per Flask app, so one per gunicorn worker process):

- nothing happens at import or app creation; the first dashboard request (or
  ``/metrics`` scrape) calls :meth:`EventsMonitor.touch`, which starts the thread
  (again after a fork, or after an idle stop);
- the thread opens its own broker connection and an ``EventReceiver`` whose listener
  queue (``<prefix>ls-celeryev-dashboard-<pid>-<id>-<token>``, subscribed to the
  ``celeryev`` SNS topic) belongs to that connection; it asks the workers for a
  heartbeat at once so they show up within a second;
- :meth:`stop` (also run at interpreter exit, e.g. gunicorn's worker shutdown), an idle
  period without dashboard requests or scrapes (``FACEFLEET_DASHBOARD_IDLE_STOP``), or a broker
  error ends the receive loop; leaving it closes the connection, and the transport
  deletes the listener queue and its SNS subscription. After an error the thread
  reconnects with a backoff (at most 30 s) until stopped.

Stopping takes at most one receive wait (:data:`RECEIVE_WAIT_S`): the loop only checks
its stop flag between long polls.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from webapp.dashboard.stats import EventAggregate

log = logging.getLogger(__name__)

#: Longest SQS long poll of the receive loop (s). Longer polls cost fewer requests
#: while idle (720/h at 5 s) but make stop() and idle stops wait longer.
RECEIVE_WAIT_S = 5.0
#: Backoff after a broker error: doubles from the first value up to the second.
RETRY_S = (1.0, 30.0)

AppFactory = Callable[[], Any]


class EventsMonitor:
    """Starts, feeds and stops one event listener; thread-safe."""

    def __init__(self, app_factory: AppFactory, aggregate: EventAggregate, *,
                 idle_stop_s: float = 300.0, enabled: bool = True,
                 clock: Callable[[], float] = time.time,
                 receive_wait_s: float = RECEIVE_WAIT_S) -> None:
        self._app_factory = app_factory
        self._celery: Any = None
        self.aggregate = aggregate
        self.enabled = enabled
        self.idle_stop_s = idle_stop_s
        self.clock = clock
        self.receive_wait_s = receive_wait_s
        self._lock = threading.Lock()  # guards the aggregate and the fields below
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._last_touch = 0.0
        self._state = "disabled" if not enabled else "off"
        self._node_id: str | None = None
        self._started_at: float | None = None
        self._listening_since: float | None = None
        self._error: str | None = None
        self._exit_hook = False

    # -- control ---------------------------------------------------------------------
    def touch(self) -> None:
        """Note a viewer (a dashboard request, a /metrics scrape); start the listener if
        it is not running here."""
        if not self.enabled:
            return
        with self._lock:
            self._last_touch = self.clock()
            if self._running():
                return
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._node_id = f"dashboard-{self._pid}-{uuid.uuid4().hex[:8]}"
            self._state = "starting"
            self._started_at = self.clock()
            self._listening_since = None
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name="dashboard-events", daemon=True)
            self._thread.start()
            if not self._exit_hook:
                # Daemon threads die silently at exit; stop first so the connection
                # closes and the listener queue is deleted (keepers are a backstop).
                atexit.register(self.stop)
                self._exit_hook = True

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the listener and wait for its queue to be removed; True when it ended."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            if self._state not in ("disabled", "idle"):
                self._state = "stopped"
        if thread is None or thread is threading.current_thread() or self._pid != os.getpid():
            return True
        thread.join(self.receive_wait_s + 10 if timeout is None else timeout)
        return not thread.is_alive()

    def _running(self) -> bool:
        thread = self._thread
        return (thread is not None and thread.is_alive() and self._pid == os.getpid()
                and not self._stop.is_set())

    # -- reading ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The aggregate at this moment (safe from any request thread)."""
        with self._lock:
            return self.aggregate.snapshot(self.clock())

    def status(self) -> dict[str, Any]:
        """The listener's state for the page: ``disabled``, ``off``, ``starting``,
        ``listening``, ``reconnecting``, ``idle`` (stopped for lack of viewers),
        ``stopped``; with its node id, start time and last error."""
        with self._lock:
            return {"enabled": self.enabled, "state": self._state, "node_id": self._node_id,
                    "pid": self._pid or None, "started_at": self._started_at,
                    "listening_since": self._listening_since, "error": self._error,
                    "idle_stop_s": self.idle_stop_s}

    # -- the thread ------------------------------------------------------------------
    def _on_event(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            self.aggregate.add(event)

    def _set_state(self, stop: threading.Event, state: str, error: str | None = None) -> None:
        """Record ``state`` unless this thread has been superseded or stopped."""
        with self._lock:
            if stop is not self._stop or (stop.is_set() and state != "idle"):
                return
            if state == "idle":
                stop.set()
            elif state == "listening":
                self._listening_since = self.clock()
            self._state = state
            self._error = error

    def _run(self, stop: threading.Event) -> None:
        delay = RETRY_S[0]
        while not stop.is_set():
            try:
                self._listen(stop)
                delay = RETRY_S[0]
            except Exception as exc:  # any broker failure: report it, back off, retry
                log.warning("dashboard event listener failed (%s: %s); retrying in %.0f s",
                            type(exc).__name__, exc, delay)
                self._set_state(stop, "reconnecting", f"{type(exc).__name__}: {exc}")
                stop.wait(delay)
                delay = min(delay * 2, RETRY_S[1])

    def _listen(self, stop: threading.Event) -> None:
        """One connection's receive loop, until ``stop`` is set or no one is watching."""
        if self._celery is None:
            self._celery = self._app_factory()
        app = self._celery
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": self._on_event},
                                           node_id=self._node_id)
            ready = receiver.on_consume_ready

            def on_ready(*args: Any, **kwargs: Any) -> None:
                # The listener queue exists and is subscribed; wakeup=True below makes
                # every worker send a heartbeat now instead of within 2 s.
                ready(*args, **kwargs)
                self._set_state(stop, "listening")

            def check() -> None:  # called by kombu before every long poll
                with self._lock:
                    idle = (self.idle_stop_s > 0
                            and self.clock() - self._last_touch > self.idle_stop_s)
                if idle:
                    self._set_state(stop, "idle")
                receiver.should_stop = stop.is_set()

            receiver.on_consume_ready = on_ready
            receiver.on_iteration = check
            for _ in receiver.consume(limit=None, timeout=None, wakeup=True,
                                      safety_interval=self.receive_wait_s):
                if stop.is_set():
                    break
        # Leaving the block closed the connection: the transport deleted the listener
        # queue and its SNS subscription.
        log.info("dashboard event listener %s closed", self._node_id)
