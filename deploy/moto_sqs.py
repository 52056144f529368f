"""moto's SQS model made safe and cheap for a server on many threads.

Two patches to the installed moto (5.2.5, the newest release; checked with ``pip index
versions moto``), applied by :mod:`deploy.moto_server` before it answers its first call.
Both are on moto's classes and module, so they are idempotent and process-wide.

**One lock per queue** (:func:`lock_queues`). moto's SQS model is written for one caller
at a time, but its server answers calls on many threads (ours on 512). Two races follow:

* **A sent message is lost.** ``Queue.delete_message`` copies every message but the
  deleted one into a new list and then rebinds ``queue._messages`` to it, without the
  queue's lock; ``Queue.add_message`` appends to the list under that lock. A message
  appended between the copy and the rebinding is in the old list only: it is gone, no
  consumer ever receives it and no error is raised. Under the stack's overload
  (hundreds of sends and deletes a second on one queue) this fits the rare 504s whose
  tasks no worker ever received (docs/benchmarks.md, "Overload"); none has been seen
  with the lock.
* **A receive fails.** ``receive_message`` iterates ``queue._pending_messages`` (a set)
  while a delete or a visibility change on another thread removes from it:
  ``RuntimeError: Set changed size during iteration``, answered as a 500.

The fix is moto's own lock used everywhere: each backend call that reads or changes a
queue's messages holds that queue's ``_messages_lock`` (a ``threading.Condition``
over an ``RLock``, so calls that call each other, such as a batch calling its single
form, nest). A long poll still waits without the lock: ``Condition.wait`` inside
``receive_message`` releases the ``RLock`` at every depth while it sleeps. Nothing is
held across queues, so nothing can deadlock; SNS's fan-out to SQS goes through the same
backend methods and is covered too.

**A clock without datetimes** (:func:`fast_clock`). Every visibility and delay check
asks ``moto.core.utils.unix_time()``, which builds two naive ``datetime`` objects to
subtract them; a receive checks every message of the queue, and then computes all the
queue's attributes (each an O(messages) count) to apply the retention period. With
150 messages queued, as under the stack's overload, a send + receive + delete +
attributes cycle took 17 ms of CPU in moto, 16 of them in that clock; with
``time.time()`` it takes 1.0 ms (same process, same queue). The time is the same:
seconds since the epoch, UTC. Calls that pass a ``datetime`` keep moto's conversion.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import moto.sqs.models as sqs_models
from moto.core.utils import unix_time as _moto_unix_time
from moto.core.utils import unix_time_millis as _moto_unix_time_millis
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import SQSBackend

#: Backend methods whose first argument is the queue name and that touch its messages.
GUARDED = (
    "send_message", "send_message_batch", "receive_message", "delete_message",
    "delete_message_batch", "change_message_visibility",
    "change_message_visibility_batch", "purge_queue", "get_queue_attributes",
)

_MARK = "_facefleet_queue_locked"


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run under the named queue's own lock."""
    @functools.wraps(method)
    def wrapper(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            queue = self.get_queue(queue_name)
        except QueueDoesNotExist:
            return method(self, queue_name, *args, **kwargs)  # moto's own error
        with queue._messages_lock:
            return method(self, queue_name, *args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def lock_queues() -> None:
    """Guard moto's SQS backend methods with per-queue locks (idempotent)."""
    for name in GUARDED:
        method = getattr(SQSBackend, name)
        if not getattr(method, _MARK, False):
            setattr(SQSBackend, name, _locked(method))


def is_locked() -> bool:
    """Whether :func:`lock_queues` has been applied in this process."""
    return all(getattr(getattr(SQSBackend, name), _MARK, False) for name in GUARDED)


def _unix_time(dt: datetime | None = None) -> float:
    return time.time() if dt is None else float(_moto_unix_time(dt))


def _unix_time_millis(dt: datetime | None = None) -> float:
    return time.time() * 1000.0 if dt is None else float(_moto_unix_time_millis(dt))


def fast_clock() -> None:
    """Give moto's SQS model a ``time.time()`` clock (idempotent)."""
    # moto.sqs.models imported these by name; rebinding them there reaches every use.
    sqs_models.unix_time = _unix_time  # type: ignore[attr-defined]
    sqs_models.unix_time_millis = _unix_time_millis  # type: ignore[attr-defined]


def patch() -> None:
    """Both patches: what the embedded server runs with."""
    lock_queues()
    fast_clock()
