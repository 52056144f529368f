"""The admission bookkeeping (pure): rate, the door, the wait that follows the work."""

from __future__ import annotations

import pytest

from config.admission import AdmissionSettings
from config.env import ConfigError
from webapp.admission import Admission, Refused


def _admission(**changes: float) -> Admission:
    settings = AdmissionSettings(**{"max_wait": 90.0, "admit_wait": 30.0,
                                    "rate_window": 20.0, **changes})
    return Admission(settings, base_wait=30.0)


def _complete(admission: Admission, count: int, start: float, every: float) -> float:
    for i in range(count):  # requests admitted earlier, answered now
        admission.finished(f"earlier-{i}", start + i * every, completed=True)
    return start + (count - 1) * every


def test_rate_needs_samples_and_falls_while_stalled() -> None:
    admission = _admission()
    assert admission.rate(0.0) is None
    last = _complete(admission, 10, start=0.0, every=0.5)  # 2 per second
    assert admission.rate(last) == pytest.approx(10 / 4.5)
    assert admission.rate(last + 10) == pytest.approx(10 / 14.5)  # nothing since: falls
    assert admission.rate(last + 30) is None  # all samples left the window


def test_door_refuses_only_when_the_expected_wait_is_too_long() -> None:
    admission = _admission(admit_wait=5.0)
    cold = [admission.enter(0.0) for _ in range(50)]  # nothing measured yet: admit
    for i, ticket in enumerate(cold[:11]):  # 2.2 per second over 5 s
        admission.finished(ticket, 1.0 + 0.5 * i, completed=True)
    now = 6.0
    for ticket in cold[11:]:
        admission.finished(ticket, now, completed=False)  # the rest gave up
    # Each arrival counts the ones admitted before it: 11 fit in 5 s, the 12th not.
    tickets = [admission.enter(now) for _ in range(11)]
    with pytest.raises(Refused) as refused:
        admission.enter(now)
    assert refused.value.expected == pytest.approx(12 / 2.2)
    assert refused.value.retry_after == 1
    for ticket in tickets:
        admission.finished(ticket, now, completed=False)  # gave up: not completions
    assert admission.outstanding() == 0
    admission.finished(admission.enter(now), now, completed=False)


def test_wait_follows_progress_up_to_the_cap() -> None:
    admission = _admission(max_wait=60.0)
    assert admission.deadline("x", 0.0) == 30.0  # unknown rate: the base wait
    # A burst of 100 arrivals at a cold start (nothing measured: all admitted)...
    tickets = [admission.enter(i * 0.01) for i in range(100)]
    now = _complete(admission, 21, start=1.0, every=0.5)  # ...then about 2 per second
    rate = admission.rate(now + 1) or 0.0
    # The 80th in line needs about 43 s more: waits past the 30 s base...
    assert admission.deadline(tickets[79], now + 1) == pytest.approx(now + 1 + 82 / rate)
    # ...but what cannot finish before the cap gives up at the base (its task expires).
    assert admission.deadline(tickets[99], now + 1) == pytest.approx(0.99 + 30.0)
    # Stalled (no completion for long): the rate falls and the wait ends at the base.
    assert admission.deadline(tickets[0], now + 25) == pytest.approx(30.0)
    assert not admission.at_cap(tickets[0], 59.9) and admission.at_cap(tickets[0], 60.0)


def test_admitted_work_must_fit_its_deadline() -> None:
    with pytest.raises(ConfigError, match="FACEFLEET_ADMIT_WAIT=100 must not exceed"):
        AdmissionSettings.from_env({"FACEFLEET_ADMIT_WAIT": "100"})


def test_the_door_admits_what_can_finish_by_its_deadline_by_default() -> None:
    assert AdmissionSettings.from_env({}).admit_wait == 90.0
    assert AdmissionSettings.from_env({"FACEFLEET_MAX_WAIT": "120"}).admit_wait == 120.0


def test_a_rate_measured_only_briefly_does_not_refuse() -> None:
    # A cold burst: 100 admitted, three answered in the first second, then a pause while
    # the rest of the fleet starts. 3 / 3.5 s would read as 117 s of queue: admitted.
    admission = _admission(admit_wait=90.0, rate_window=20.0)
    tickets = [admission.enter(0.0) for _ in range(100)]
    _complete(admission, 3, start=0.5, every=0.5)
    assert admission.rate(4.0) == pytest.approx(3 / 3.5)
    admission.finished(admission.enter(4.0), 4.0, completed=False)
    # Measured over half the window (10 s) at that rate, the door refuses.
    with pytest.raises(Refused):
        admission.enter(10.5)
    for ticket in tickets:
        admission.finished(ticket, 11.0, completed=False)


def test_a_quiet_spell_is_not_read_as_a_slow_service() -> None:
    """A burst's tail, 15 s with nothing outstanding, then a new burst of 100 clients:
    the rate is the one measured while busy, and the door admits them all."""
    admission = _admission(admit_wait=90.0, rate_window=20.0)
    tail = [admission.enter(0.0) for _ in range(20)]
    for i, ticket in enumerate(tail):  # 20 answers in 2 s: 10 per second
        admission.finished(ticket, 0.1 * (i + 1), completed=True)
    assert admission.rate(2.0) == pytest.approx(20 / 1.9)
    assert admission.rate(17.0) == pytest.approx(20 / 1.9)  # quiet: the rate holds
    # Counting the quiet 15 s it read as 1.2 per second: 100 clients, 85 s of queue.
    burst = [admission.enter(17.0) for _ in range(100)]
    assert admission.outstanding() == 100
    # Busy again and nothing answered: now the rate falls, as a stalling service's does.
    assert admission.rate(19.0) == pytest.approx(20 / 3.9)
    for ticket in burst:
        admission.finished(ticket, 19.0, completed=False)


def test_a_refusal_keeps_the_quiet_spell_going() -> None:
    admission = _admission(admit_wait=0.5, rate_window=20.0)
    first = [admission.enter(0.0) for _ in range(3)]
    for i, ticket in enumerate(first):  # 3 answers over 3 s: measured, and slow
        admission.finished(ticket, 1.0 + 1.5 * i, completed=True)
    with pytest.raises(Refused):
        admission.enter(4.5)  # 1 / (3 / 3.0) = 1 s > 0.5 s
    assert admission.rate(10.0) == pytest.approx(3 / 3.0)  # still quiet since 4.0

