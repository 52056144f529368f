"""Admission: the wait follows the work, abandoned work is dropped, and work that cannot
finish is refused at the door.

A fixed wait fails both ways. Under a steady full load (100 clients of the reference
workload) a request that is moving up the queue hit the fixed 30 s and got a 504 --
the tail of the queue, not a fault. Under overload, clients gave up at 30 s but their
tasks stayed queued and ran later for nobody, so every new request waited behind
abandoned ones: the queue grew past the number of clients and did not heal when the
cause went away (a metastable failure: Bronson et al., HotOS 2021). The AWS Builders'
Library's answer is to keep goodput flat as offered load rises: bound the work each
request may cause, and shed what cannot be served in time, cheaply and early.

So, in each web process, from its own requests only (no extra AWS calls):

- **service rate**: completions of this process's waiting requests over the last
  ``FACEFLEET_RATE_WINDOW`` seconds, per second of that time during which it had a
  request outstanding (unknown until a few have completed). Idle time is no evidence of
  a slow service: counted, the tail of one burst followed by 15 s of silence read as
  1.1 req/s at the start of the next, and its 100 clients as 91 s of queue, so 20 of
  them were refused "overloaded" (bench.scaling, 2026-12-02);
- **the door**: a new request's expected wait is (requests outstanding + 1) / rate
  (Little's law); above ``FACEFLEET_ADMIT_WAIT`` (by default its deadline,
  ``FACEFLEET_MAX_WAIT``: only work that cannot finish in time is refused) it is refused
  with 503 and a ``Retry-After`` of the excess, before anything is stored -- once the
  rate has been measured over half its window (or the door's wait, if shorter), never
  on the first few answers of a cold burst;
- **the wait**: a waiting request waits at least ``FACEFLEET_RESULT_TIMEOUT``, and longer
  while it makes progress -- its expected finish, (requests ahead + 1) / rate, still
  falls before ``FACEFLEET_MAX_WAIT`` -- so the tail of a busy queue is answered, and a
  stalled queue (no completions) still ends in a 504 at the usual time;
- **the deadline**: every waiting request's task carries Celery's ``expires`` at
  ``FACEFLEET_MAX_WAIT``: a worker drops it unrun (no image fetched) once its client
  can no longer be waiting, so abandoned work never delays anyone.

One process's view stands for the whole queue's because its requests are a random
sample of the queue (one process is the default; several share the queue evenly
behind a load balancer). The bookkeeping here is pure; the clock is given.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from config.admission import AdmissionSettings

#: Completions needed before the rate is trusted (one or two can be a fluke).
MIN_SAMPLES = 3
#: Retry-After bounds (s) for a refused request.
RETRY_MIN, RETRY_MAX = 1, 60


class Refused(Exception):
    """A new request would wait ``expected`` s; the client should retry in ``retry_after``."""

    def __init__(self, expected: float, retry_after: int) -> None:
        super().__init__(f"expected wait {expected:.1f} s")
        self.expected = expected
        self.retry_after = retry_after


@dataclass
class Admission:
    """This process's outstanding requests and completion rate (thread-safe)."""

    settings: AdmissionSettings
    base_wait: float
    _outstanding: OrderedDict[str, float] = field(default_factory=OrderedDict)
    #: Completions as (time, busy clock at that time), oldest first.
    _completed: deque[tuple[float, float]] = field(default_factory=deque)
    #: Seconds spent with nothing outstanding, up to ``_idle_since``.
    _idle_s: float = 0.0
    #: When the last outstanding request left; None while any is outstanding.
    _idle_since: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tickets: int = 0

    # ---- measurement -------------------------------------------------------------

    def rate(self, now: float) -> float | None:
        """Completions per busy second over the window; None while too few are known."""
        with self._lock:
            return self._rate(now)[0]

    def _busy_clock(self, now: float) -> float:
        """Seconds so far that were not quiet: it stands still while nothing is
        outstanding."""
        quiet = self._idle_s + (now - self._idle_since if self._idle_since is not None
                                else 0.0)
        return now - quiet

    def _rate(self, now: float) -> tuple[float | None, float]:
        """(rate, busy seconds it was measured over) at ``now``."""
        window = self.settings.rate_window
        while self._completed and self._completed[0][0] < now - window:
            self._completed.popleft()
        if len(self._completed) < MIN_SAMPLES:
            return None, 0.0
        # Over the busy time since the oldest completion kept: a stalling service's rate
        # (requests outstanding, none answered) falls as ``now`` moves on, without
        # waiting for samples to expire; a quiet one keeps the rate it had.
        busy = self._busy_clock(now) - self._completed[0][1]
        return len(self._completed) / max(busy, 1e-3), busy

    def outstanding(self) -> int:
        with self._lock:
            return len(self._outstanding)

    # ---- the door ----------------------------------------------------------------

    def enter(self, now: float) -> str:
        """Admit a new request (a ticket naming it here) or raise Refused.

        Checked and counted at once, under the lock: concurrent arrivals each see the
        ones admitted before them, even before their images are stored.
        """
        with self._lock:
            rate, busy = self._rate(now)
            # Nothing measured yet, or not for long enough (cold start): admit. The first
            # few completions of a burst on a fleet still starting say little about its
            # capacity: three answers and then a pause of a few seconds read as 0.8 req/s,
            # and 100 waiting requests as 125 s of queue, where the run's p99 was 28 s (a
            # clean-clone CI run refused 32 such requests). So a rate is trusted to refuse
            # only once measured over half its window of busy time, or over the door's own
            # wait if that is shorter; until then the waiting-request cap still bounds the
            # queue.
            trusted = rate is not None and busy >= min(
                self.settings.rate_window / 2, self.settings.admit_wait)
            expected = (len(self._outstanding) + 1) / rate if trusted and rate else None
            if expected is None or expected <= self.settings.admit_wait:
                if self._idle_since is not None:  # a quiet spell ends
                    self._idle_s += now - self._idle_since
                    self._idle_since = None
                self._tickets += 1
                ticket = f"t{self._tickets}"
                self._outstanding[ticket] = now
                return ticket
        retry = math.ceil(expected - self.settings.admit_wait)
        raise Refused(expected, max(RETRY_MIN, min(RETRY_MAX, retry)))

    # ---- one request's life --------------------------------------------------------

    def finished(self, ticket: str, now: float, *, completed: bool) -> None:
        """The request left: with its result (``completed``) or without (it gave up)."""
        with self._lock:
            left = self._outstanding.pop(ticket, None) is not None
            if left and not self._outstanding:
                self._idle_since = now
            if completed:
                self._completed.append((now, self._busy_clock(now)))

    def deadline(self, ticket: str, now: float) -> float:
        """When the waiter of ``ticket`` should give up, as seen at ``now``."""
        with self._lock:
            submitted = self._outstanding.get(ticket, now)
            floor = submitted + self.base_wait
            cap = submitted + self.settings.max_wait
            rate = self._rate(now)[0]
            if rate is None:
                return min(floor, cap)
            ahead = 0
            for other, at in self._outstanding.items():
                if other == ticket or at > submitted:
                    break
                ahead += 1
        # Its expected finish plus two service times of slack for the jitter of a
        # rate measured over seconds.
        expected = now + (ahead + 1) / rate + 2 / rate
        return min(cap, max(floor, expected if expected <= cap else floor))

    def at_cap(self, ticket: str, now: float) -> bool:
        """True when ``ticket`` has waited its full FACEFLEET_MAX_WAIT (its task's
        deadline has come)."""
        with self._lock:
            submitted = self._outstanding.get(ticket, now)
        return now >= submitted + self.settings.max_wait - 1e-6
