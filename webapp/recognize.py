"""Submit an upload and await its result: the one flow both ``POST /`` and
``POST /api/v1/recognitions`` share, with its admission (webapp/admission.py): refused
at the door when it cannot be served in time, a wait that follows the work, and a
task deadline so abandoned work is dropped.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app

from tasks.errors import ResultTimeout
from webapp.admission import Refused
from webapp.errors import ApiError, translate_backend_error
from webapp.services import get_services
from webapp.uploads import Upload


def overloaded(expected: float, retry_after: int, admit_wait: float) -> ApiError:
    """The door's refusal: 503 + Retry-After, nothing stored."""
    return ApiError(f"The service is overloaded: a new request would wait about "
                    f"{expected:.0f} s in the queue, more than the {admit_wait:g} s it admits "
                    f"(FACEFLEET_ADMIT_WAIT). Nothing was stored; retry in {retry_after} s.",
                    "overloaded", status=503, headers={"Retry-After": str(retry_after)},
                    expected_wait_s=round(expected, 1))


def submit(upload: Upload, *, wait: bool = False) -> tuple[str, float, str]:
    """Admit, store the image and enqueue its task; return (request id, seconds it took,
    admission ticket). The caller ends the ticket (``admission.finished``).

    ``wait``: a client is waiting for it, so its task expires with that wait
    (FACEFLEET_MAX_WAIT); otherwise (``?wait=false``) the client collects it later and
    it runs whenever it is reached. Either way it is refused at the door (503) when the
    queue is already longer than FACEFLEET_ADMIT_WAIT seconds of work.
    """
    services = get_services()
    admission = services.admission
    try:
        ticket = admission.enter(time.monotonic())
    except Refused as refused:
        raise overloaded(refused.expected, refused.retry_after,
                         admission.settings.admit_wait) from None
    started = time.perf_counter()
    expires = admission.settings.max_wait if wait else None
    try:
        request_id = services.client.submit(upload.data, upload.filename, expires=expires)
    except BaseException:
        admission.finished(ticket, time.monotonic(), completed=False)
        raise
    return request_id, time.perf_counter() - started, ticket


def submit_later(upload: Upload) -> tuple[str, float]:
    """``?wait=false``: admit, store and enqueue; nobody waits here for the result."""
    request_id, submit_s, ticket = submit(upload)
    # Its completion is never seen here, so it leaves the count at once.
    get_services().admission.finished(ticket, time.monotonic(), completed=False)
    return request_id, submit_s


def recognize_and_wait(upload: Upload) -> dict[str, Any]:
    """Submit ``upload`` and wait for its result while it makes progress.

    The returned dict is the task's result plus ``timings.submit``/``wait``/``web_total``
    (seconds). A wait that ends before the task's deadline is a 504 that names the
    request id and its Location (the task may still run, and the client may collect
    it); one that reached the deadline is a retryable 503 (the task is dropped unrun).
    """
    services = get_services()
    admission = services.admission
    metrics = current_app.extensions["facefleet_metrics"]
    started = time.perf_counter()
    with services.waiting_slot():
        metrics.waiting.inc()
        try:
            request_id, submit_s, ticket = submit(upload, wait=True)
            waited = time.perf_counter()
            answered = False
            try:
                result = services.client.wait(
                    request_id, services.settings.result_timeout,
                    deadline=lambda: admission.deadline(ticket, time.monotonic()))
                answered = True
            except Exception as exc:
                # A failed task is an answer too: it counts towards the service rate.
                answered = not isinstance(exc, ResultTimeout)
                raise _waiting_error(exc, request_id,
                                     admission.at_cap(ticket, time.monotonic())) from None
            finally:
                admission.finished(ticket, time.monotonic(), completed=answered)
        finally:
            metrics.waiting.dec()
    done = time.perf_counter()
    result = dict(result)
    timings = dict(result.get("timings") or {})
    timings.update(submit=submit_s, wait=done - waited, web_total=done - started)
    result["timings"] = timings
    result.setdefault("request_id", request_id)
    return result


def _waiting_error(exc: Exception, request_id: str, at_deadline: bool) -> Exception:
    """The HTTP error for a wait that ended without a result (or ``exc`` itself)."""
    mapped = translate_backend_error(exc)
    if mapped is None:
        return exc
    if isinstance(exc, ResultTimeout) and at_deadline:
        max_wait = get_services().admission.settings.max_wait
        mapped = ApiError(f"No result within {max_wait:g} s (FACEFLEET_MAX_WAIT): the "
                          "request was not reached before its deadline and is dropped "
                          "unrun, so nothing was recognised. Send the image again.",
                          "expired", status=503, headers={"Retry-After": "1"})
    mapped.extra.setdefault("request_id", request_id)
    if mapped.status == 504:
        location = f"/api/v1/recognitions/{request_id}"
        mapped.extra["location"] = location
        mapped.headers["Location"] = location
    return mapped
