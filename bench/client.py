"""The documented client of the JSON API, as docs/reliability.md describes it, and the
accounting of what each request finally got.

    POST /api/v1/recognitions
      200                      -> done
      503 + Retry-After        -> wait that long, send again (overloaded, expired, AWS down)
      504 + Location           -> poll the Location (GET) until it is done
      connection error         -> wait a moment, send again
      anything else            -> an error the client cannot fix by retrying

Every attempt's request id (from any answer that carried one) is kept, so a request
that was never answered can be checked for a result in S3: never answered *and* no
result stored is a **lost** request. The loop is bounded by a budget in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

API = "/api/v1/recognitions"
#: Final kinds of a request (see :func:`classify`).
KINDS = ("correct", "wrong", "retryable", "error", "unanswered")


@dataclass
class Attempted:
    """One request through the documented client: its attempts and final answer."""

    image: str
    expected: str | None
    sent: float                       # time.monotonic() of the first attempt
    finished: float = 0.0             # of the final answer (or of giving up)
    attempts: int = 0
    status: int | None = None         # the final answer's HTTP status (None: none came)
    retry_after: bool = False         # the final answer carried Retry-After
    label: str | None = None
    error: str | None = None
    request_ids: list[str] = field(default_factory=list)

    @property
    def latency(self) -> float:
        return self.finished - self.sent


def classify(outcome: Attempted) -> str:
    """``correct``/``wrong`` (answered 200), ``retryable`` (the budget ran out on a 5xx
    with Retry-After: said clearly, and safe to send again), ``error`` (any other final
    answer) or ``unanswered`` (no HTTP answer at all)."""
    if outcome.status == 200:
        return "correct" if outcome.label == outcome.expected else "wrong"
    if outcome.status is None:
        return "unanswered"
    if outcome.status >= 500 and outcome.retry_after:
        return "retryable"
    return "error"


def is_lost(outcome: Attempted, has_result: Callable[[str], bool]) -> bool:
    """Never answered 200 and no result stored for any id it was given."""
    if outcome.status == 200:
        return False
    return not any(has_result(request_id) for request_id in outcome.request_ids)


def count(outcomes: Sequence[Attempted], lost: Sequence[bool]) -> dict[str, int]:
    """Requests by final kind, plus ``lost`` and ``retried`` (more than one attempt)."""
    kinds = [classify(o) for o in outcomes]
    counts = {kind: kinds.count(kind) for kind in KINDS}
    counts.update(sent=len(outcomes), lost=sum(lost),
                  retried=sum(o.attempts > 1 for o in outcomes))
    return counts


def _retry_after(response: requests.Response, cap: float) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return min(cap, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def recognise(session: requests.Session, base: str, name: str, data: bytes,
              expected: str | None, *, budget: float = 180.0, timeout: float = 120.0,
              max_pause: float = 10.0) -> Attempted:
    """Send one image by the documented protocol until it is answered or ``budget``
    seconds have passed."""
    outcome = Attempted(name, expected, time.monotonic())
    give_up = outcome.sent + budget
    location: str | None = None
    while True:
        outcome.attempts += 1
        pause = 0.5 * min(outcome.attempts, 4)
        try:
            if location is None:
                response = session.post(base + API, files={"image": (name, data)},
                                        timeout=timeout)
            else:
                response = session.get(base + location, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            # No answer: send again (or poll again: the Location stays valid).
            outcome.status, outcome.error = None, f"{type(exc).__name__}"
        else:
            body = _json(response)
            request_id = body.get("request_id")
            if isinstance(request_id, str) and request_id not in outcome.request_ids:
                outcome.request_ids.append(request_id)
            outcome.status, outcome.error = response.status_code, body.get("error")
            outcome.retry_after = "Retry-After" in response.headers
            if response.status_code == 200:
                outcome.label = body.get("label")
                break
            if response.status_code == 202 and location is not None:
                pause = _retry_after(response, max_pause) or 1.0  # still pending
            elif response.status_code == 504 and response.headers.get("Location"):
                location = response.headers["Location"]
                pause = 0.0
            elif response.status_code >= 500 and outcome.retry_after:
                location = None  # expired, overloaded, AWS trouble: send it again
                pause = _retry_after(response, max_pause) or pause
            else:
                break  # the client cannot fix this by retrying
        if time.monotonic() + pause >= give_up:
            break
        time.sleep(pause)
    outcome.finished = time.monotonic()
    return outcome
