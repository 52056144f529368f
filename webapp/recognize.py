"""Submit an upload and await its result: the one flow both ``POST /`` and
``POST /api/v1/recognitions`` share.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app

from webapp.errors import translate_backend_error
from webapp.services import get_services
from webapp.uploads import Upload


def submit(upload: Upload) -> tuple[str, float]:
    """Store the image and enqueue its task; return (request id, seconds it took)."""
    started = time.perf_counter()
    request_id = get_services().client.submit(upload.data, upload.filename)
    return request_id, time.perf_counter() - started


def recognize_and_wait(upload: Upload) -> dict[str, Any]:
    """Submit ``upload`` and wait up to ``settings.result_timeout`` s for its result.

    The returned dict is the task's result plus ``timings.submit``/``wait``/``web_total``
    (seconds). A timeout is re-raised as a 504 that names the request id, so the client
    can still fetch the result later.
    """
    services = get_services()
    metrics = current_app.extensions["facefleet_metrics"]
    started = time.perf_counter()
    with services.waiting_slot():
        metrics.waiting.inc()
        try:
            request_id, submit_s = submit(upload)
            waited = time.perf_counter()
            try:
                result = services.client.wait(request_id, services.settings.result_timeout)
            except Exception as exc:
                mapped = translate_backend_error(exc)
                if mapped is None:
                    raise
                mapped.extra.setdefault("request_id", request_id)
                if mapped.status == 504:
                    location = f"/api/v1/recognitions/{request_id}"
                    mapped.extra["location"] = location
                    mapped.headers["Location"] = location
                raise mapped from None
        finally:
            metrics.waiting.dec()
    done = time.perf_counter()
    result = dict(result)
    timings = dict(result.get("timings") or {})
    timings.update(submit=submit_s, wait=done - waited, web_total=done - started)
    result["timings"] = timings
    result.setdefault("request_id", request_id)
    return result
