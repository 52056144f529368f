"""PromptConsumeMixin on kombu's real event loop: a freed slot is polled in the same turn.

The channel underneath is a stand-in for kombu's SQS channel that only records what it
is asked to do (a pure unit of the scheduling logic); the loop is kombu's ``Hub``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.asynchronous import Hub

from tasks.transport.prompt_poll import PARK_FALLBACK_S, PromptConsumeMixin


class _QoS:
    def __init__(self, prefetch: int = 1) -> None:
        self.prefetch_count = prefetch
        self.held = 0

    def can_consume(self) -> bool:
        return self.held < self.prefetch_count


class _RecordingChannel:
    """What the mixin needs of kombu's SQS channel; ``_schedule_queue`` records polls."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.qos = _QoS()
        self.closed = False
        self._active_queues = ["requests"]
        self.polled: list[str] = []

    def _schedule_queue(self, queue: str) -> None:
        self.polled.append(queue)

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        self.qos.held -= 1

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        self.qos.held -= 1

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0,
                  apply_global: bool = False) -> None:
        self.qos.prefetch_count = prefetch_count


class _Channel(PromptConsumeMixin, _RecordingChannel):
    pass


@pytest.fixture
def hub() -> Iterator[Hub]:
    """kombu's event loop with one idle reader, so each turn really polls."""
    hub = Hub()
    read_fd, write_fd = os.pipe()
    hub.add_reader(read_fd, lambda: None)
    try:
        yield hub
    finally:
        hub.close()
        os.close(read_fd)
        os.close(write_fd)


def _busy(hub: Hub) -> _Channel:
    channel = _Channel(hub)
    channel.qos.held = 1
    return channel


def test_a_busy_queue_is_parked_not_polled(hub: Hub) -> None:
    channel = _busy(hub)
    channel._schedule_queue("requests")
    assert channel.polled == []
    assert channel._parked == {"requests"}
    assert channel._park_timer is not None  # the safety net is armed


def test_an_idle_queue_is_polled_at_once(hub: Hub) -> None:
    channel = _Channel(hub)
    channel._schedule_queue("requests")
    assert channel.polled == ["requests"]
    assert not channel._parked


def test_ack_after_recheck_in_one_batch_polls_in_the_same_loop_turn(hub: Hub) -> None:
    # Celery defers the ack with call_soon; kombu's re-check is also a ready callback.
    # Re-check first, then the ack, in one batch: the case that used to wait out the
    # next poll (up to a second) before the next ReceiveMessage.
    channel = _busy(hub)
    hub.call_soon(lambda: (channel._schedule_queue("requests"), channel.basic_ack(1)))
    loop = hub.create_loop()
    next(loop)
    assert channel.polled == ["requests"]
    assert not channel._parked


def test_a_resume_from_another_thread_wakes_the_loop(hub: Hub) -> None:
    channel = _busy(hub)
    loop = hub.create_loop()
    next(loop)  # the loop thread is now this one
    channel._schedule_queue("requests")
    acker = threading.Thread(target=channel.basic_ack, args=(1,))
    acker.start()
    acker.join()
    assert hub._ready  # queued with call_soon, which wakes a sleeping loop
    next(loop)
    assert channel.polled == ["requests"]


@pytest.mark.parametrize("release", ["reject", "qos"])
def test_reject_and_a_larger_prefetch_resume_too(hub: Hub, release: str) -> None:
    channel = _busy(hub)
    channel._schedule_queue("requests")
    if release == "reject":
        channel.basic_reject(1)
    else:
        channel.basic_qos(prefetch_count=2)
    next(hub.create_loop())
    assert channel.polled == ["requests"]


def test_an_ack_that_leaves_every_slot_held_keeps_the_queue_parked(hub: Hub) -> None:
    channel = _busy(hub)
    channel.qos.held = 2  # two deliveries held, one slot: one ack is not enough
    channel._schedule_queue("requests")
    channel.basic_ack(1)
    next(hub.create_loop())
    assert channel.polled == []
    assert channel._parked == {"requests"}


def test_the_fallback_rechecks_and_rearms(hub: Hub) -> None:
    channel = _busy(hub)
    channel._schedule_queue("requests")
    first = channel._park_timer
    channel._fallback()  # still busy: stays parked, the net is armed again
    assert channel.polled == [] and channel._park_timer is not None
    assert channel._park_timer is not first
    channel.qos.held = 0  # freed without an ack (a reconnect restoring deliveries)
    channel._fallback()
    assert channel.polled == ["requests"] and channel._park_timer is None
    assert PARK_FALLBACK_S <= 1.0  # never slower than kombu's default re-check


def test_a_closed_channel_never_polls_again(hub: Hub) -> None:
    channel = _busy(hub)
    channel._schedule_queue("requests")
    channel.closed = True
    channel.basic_ack(1)
    next(hub.create_loop())
    assert channel.polled == []
