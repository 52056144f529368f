"""Dynamic batching inside one worker process: the recognitions of the tasks it holds
at once run together (one detector pass per image size, one embedder pass for all
faces), like Triton's dynamic batcher or Ray Serve's ``@serve.batch``.

Each task stays an ordinary Celery task: the threads pool runs up to
``FACEFLEET_WORKER_CONCURRENCY`` of them at once, each fetches its image and hands the
bytes to this process's :class:`Batcher`, which recognises whatever is waiting in one
``Recognizer.recognize_many`` call and gives every task its own outcome back. So each
task keeps its own result, ack (``acks_late``), events, completion signal, visibility
extension and failure: a bad image is an ImageError in its own slot only, and a batch
that raises anything else is re-run one image at a time, so only the image at fault
fails. A worker killed mid-batch acked none of the batch's messages: SQS redelivers
them all.

When to run: as soon as a compute slot is free and an image waits, unless more of the
tasks this process is running are still on their way (fetching their image): then up
to ``FACEFLEET_BATCH_WAIT`` seconds for them, and never past ``FACEFLEET_BATCH_MAX``
images. A lone request has no one to wait for and is recognised at once. Under load,
images arrive while a batch runs and form the next one, so batches grow with the load
without any added wait.

Why not celery-batches (PyPI, 0.11): it requires Celery < 5.7 (we run 5.7); it
flushes on a timer (``flush_interval``) or a count, so a lone request waits out the
timer; it runs one task for the whole buffer, so the tasks lose their own Celery
request (our lost-run retry and dead-lettering in tasks.lifecycle, ``expires``, the
per-task events the dashboard counts, the completion signal sent after each result is
stored), results must be stored by hand, and a time limit or a crash covers the whole
buffer as one task. Batching below the task boundary keeps all of that.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Runs a batch: one outcome per input, in order (an exception object for a failed one).
RunBatch = Callable[[Sequence[bytes]], Sequence["T | Exception"]]


@dataclass
class _Item(Generic[T]):
    """One image waiting for its outcome."""

    data: bytes
    queued: float
    done: threading.Event = field(default_factory=threading.Event)
    outcome: T | Exception | None = None
    batch: int = 0
    waited: float = 0.0


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a task gets back: its result (or the exception for it to raise), the size of
    the batch it ran in, and how long it waited for the batch to start."""

    value: T | Exception
    batch: int
    waited: float


class Ticket(Generic[T]):
    """A task's place in the batcher, from before its image is fetched to its end."""

    def __init__(self, batcher: Batcher[T]) -> None:
        self._batcher = batcher
        self._submitted = False

    def recognize(self, data: bytes) -> Outcome[T]:
        """Queue ``data`` for the next batch and wait for its outcome."""
        if self._submitted:
            raise RuntimeError("a ticket recognises one image")
        self._submitted = True
        return self._batcher._submit(data)

    def _close(self) -> None:
        if not self._submitted:  # the task failed before it had an image
            self._batcher._withdraw()


class Batcher(Generic[T]):
    """Coalesces the concurrent recognitions of one process (see the module docstring).

    ``slots`` batches may run at once (one per core's worth of torch threads, as
    tasks.state.compute_slots); with ``max_batch`` 1 every image runs alone in the
    calling thread under a semaphore of ``slots`` (no thread, no hand-off).
    """

    def __init__(self, run: RunBatch[T], *, max_batch: int, max_wait_s: float,
                 slots: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1 or slots < 1 or max_wait_s < 0:
            raise ValueError("max_batch and slots must be ≥ 1, max_wait_s ≥ 0")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.slots = slots
        self._clock = clock
        self._cv = threading.Condition()
        self._pending: deque[_Item[T]] = deque()
        self._coming = 0  # tickets taken whose image is not queued yet
        self._inline = threading.BoundedSemaphore(slots)
        self._threads: list[threading.Thread] = []
        self._pid = 0

    @contextmanager
    def ticket(self) -> Iterator[Ticket[T]]:
        """Hold a place from the start of a task: the batcher waits (a little) for the
        images of tasks that hold one, never for tasks that do not exist."""
        with self._cv:
            self._coming += 1
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            ticket._close()

    # -- called through a ticket ---------------------------------------------------------

    def _withdraw(self) -> None:
        with self._cv:
            self._coming -= 1
            self._cv.notify_all()

    def _submit(self, data: bytes) -> Outcome[T]:
        if self.max_batch == 1:
            with self._cv:
                self._coming -= 1
            queued = self._clock()
            with self._inline:
                waited = self._clock() - queued
                value = self._run_alone(data)
            return Outcome(value, 1, waited)
        item: _Item[T] = _Item(data, self._clock())
        with self._cv:
            self._ensure_threads()
            self._coming -= 1
            self._pending.append(item)
            self._cv.notify_all()
        item.done.wait()
        assert item.outcome is not None
        return Outcome(item.outcome, item.batch, item.waited)

    # -- the compute threads ---------------------------------------------------------------

    def _ensure_threads(self) -> None:
        """Start the compute threads in this process (threads do not survive a fork:
        the embedded runner forks workers from a preloaded parent)."""
        if self._pid == os.getpid() and all(t.is_alive() for t in self._threads):
            return
        self._pid = os.getpid()
        self._threads = [threading.Thread(target=self._loop, name=f"batcher-{i}", daemon=True)
                         for i in range(self.slots)]
        for thread in self._threads:
            thread.start()

    def _next_batch(self) -> list[_Item[T]]:
        """Block until a batch is due; take it (called with the lock held)."""
        while True:
            while not self._pending:
                self._cv.wait()
            deadline = self._pending[0].queued + self.max_wait_s
            while (self._pending and len(self._pending) < self.max_batch
                   and self._coming > 0 and self._clock() < deadline):
                self._cv.wait(max(0.0, deadline - self._clock()))
            if self._pending:  # another slot may have taken them meanwhile
                size = min(self.max_batch, len(self._pending))
                return [self._pending.popleft() for _ in range(size)]

    def _loop(self) -> None:
        while True:
            with self._cv:
                batch = self._next_batch()
            started = self._clock()
            try:
                values = self._run_batch([item.data for item in batch])
                for item, value in zip(batch, values, strict=True):
                    item.outcome, item.batch = value, len(batch)
                    item.waited = started - item.queued
            finally:
                # Whatever happened (even a BaseException ending this thread), no task
                # is left waiting: an unfilled slot gets an error to raise.
                for item in batch:
                    if item.outcome is None:
                        item.outcome = RuntimeError("the batch thread ended mid-batch")
                    item.done.set()

    def _run_batch(self, datas: Sequence[bytes]) -> Sequence[T | Exception]:
        """All together; if that raises, each alone, so only the culprit fails."""
        try:
            values = self._run(datas)
            if len(values) != len(datas):
                raise RuntimeError(f"batch of {len(datas)} gave {len(values)} outcomes")
            return values
        except Exception as exc:
            if len(datas) == 1:
                return [exc]
            log.warning("a batch of %d failed (%s: %s); recognising its images one by one",
                        len(datas), type(exc).__name__, exc)
            return [self._run_alone(data) for data in datas]

    def _run_alone(self, data: bytes) -> T | Exception:
        try:
            return self._run([data])[0]
        except Exception as exc:
            return exc
