"""moto's SQS model patched (deploy.moto_sqs): per-queue locks, a datetime-free clock.

These drive moto's backend objects in this process, on threads, to force the exact
interleaving that lost messages over HTTP under load; the server applying the patch
is checked by its own test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import moto.sqs.models as sqs_models
import pytest
from moto.core.utils import unix_time, utcnow
from moto.sqs.models import Message, SQSBackend, sqs_backends

from deploy import moto_server
from deploy.moto_sqs import fast_clock, is_locked, lock_queues

ACCOUNT, REGION = "123456789012", "eu-north-1"


class GateMessage(Message):  # type: ignore[misc]
    """A message that parks the thread that checks its receipt handles until told."""

    def __init__(self) -> None:
        super().__init__("gate", "gate")
        self.entered = threading.Event()
        self.go = threading.Event()

    def had_receipt_handle(self, receipt_handle: str) -> bool:
        self.entered.set()
        self.go.wait(5)
        return False


@pytest.fixture
def backend() -> Iterator[tuple[SQSBackend, str]]:
    lock_queues()
    sqs = sqs_backends[ACCOUNT][REGION]
    name = f"locks-{uuid.uuid4().hex[:8]}"
    sqs.create_queue(name)
    yield sqs, name
    sqs.delete_queue(name)


def test_a_message_sent_during_a_delete_is_kept(backend: tuple[SQSBackend, str]) -> None:
    """moto rebinds the message list after copying it; a send in between was lost."""
    sqs, name = backend
    sqs.send_message(name, "done")
    (received,) = sqs.receive_message(name, 1, 0, 60)
    gate = GateMessage()
    sqs.get_queue(name)._messages.append(gate)

    deleting = threading.Thread(target=sqs.delete_message, args=(name, received.receipt_handle))
    deleting.start()
    assert gate.entered.wait(5)  # the delete is inside its copy of the list
    sending = threading.Thread(target=sqs.send_message, args=(name, "new"))
    sending.start()
    sending.join(0.3)
    assert sending.is_alive(), "the send must wait for the delete to finish"
    gate.go.set()
    deleting.join(5)
    sending.join(5)

    bodies = [m.body for m in sqs.get_queue(name)._messages]
    assert "done" not in bodies
    assert "new" in bodies


def test_a_long_poll_waits_without_the_lock(backend: tuple[SQSBackend, str]) -> None:
    """A receive waiting for messages must not keep senders (or other receivers) out."""
    sqs, name = backend
    got: list[str] = []
    polling = threading.Thread(
        target=lambda: got.extend(m.body for m in sqs.receive_message(name, 1, 5, 60)))
    polling.start()
    sending = threading.Thread(target=sqs.send_message, args=(name, "hello"))
    threading.Timer(0.2, sending.start).start()
    polling.join(5)
    sending.join(1)
    assert not sending.is_alive()
    assert got == ["hello"]


def test_errors_are_moto_s_own_for_a_missing_queue() -> None:
    lock_queues()
    sqs = sqs_backends[ACCOUNT][REGION]
    with pytest.raises(Exception, match="does not exist"):
        sqs.delete_message("no-such-queue", "handle")


def test_the_server_applies_both_patches() -> None:
    moto_server.make_app()
    assert is_locked()
    assert sqs_models.unix_time.__module__ == "deploy.moto_sqs"
    lock_queues()  # again: still one layer
    assert SQSBackend.delete_message.__wrapped__.__name__ == "delete_message"
    assert not hasattr(SQSBackend.delete_message.__wrapped__, "__wrapped__")


def test_the_fast_clock_tells_moto_s_time(backend: tuple[SQSBackend, str]) -> None:
    """Same seconds since the epoch as moto's own clock; visibility still works by it."""
    fast_clock()
    assert abs(sqs_models.unix_time() - unix_time()) < 0.5
    assert abs(sqs_models.unix_time_millis() - 1000 * unix_time()) < 500
    moment = utcnow()
    assert sqs_models.unix_time(moment) == unix_time(moment)  # a datetime: moto's own
    sqs, name = backend
    sqs.send_message(name, "m")
    assert len(sqs.receive_message(name, 1, 0, 1)) == 1
    assert sqs.receive_message(name, 1, 0, 1) == []  # in flight for a second
    time.sleep(1.1)
    (again,) = sqs.receive_message(name, 1, 0, 60)
    assert again.body == "m"
