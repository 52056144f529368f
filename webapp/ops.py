"""Operations routes: ``GET /healthz`` and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webapp.errors import translate_backend_error
from webapp.services import get_services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 ``{"status": "ok"}`` when the request queue answers; 503 ``degraded`` with the
    reason when it does not (the web process itself is alive either way).
    ---
    get:
      summary: Whether the request queue answers
      operationId: getHealth
      responses:
        "200":
          description: ok.
          content:
            application/json: {schema: Health}
        "503":
          description: degraded, with the reason under checks.
          content:
            application/json: {schema: Health}
    """
    services = get_services()
    started = time.perf_counter()
    checks: dict[str, object] = {}
    status = 200
    try:
        depth = services.client.queue_depth()
        checks["queue"] = {"ok": True, "visible": depth.visible, "in_flight": depth.in_flight}
    except Exception as exc:
        mapped = translate_backend_error(exc)
        if mapped is None:
            raise
        checks["queue"] = {"ok": False, "message": mapped.message}
        status = 503
    body = {"status": "ok" if status == 200 else "degraded", "checks": checks,
            "endpoint": services.settings.aws_endpoint or "aws",
            "elapsed_s": round(time.perf_counter() - started, 4)}
    return jsonify(body), status


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text: request counts, latency histogram, waiting requests, queue depth.
    ---
    get:
      summary: Prometheus metrics (text exposition format)
      operationId: getMetrics
      responses:
        "200":
          description: Requests by route and status, latency, waiting requests, queue depth.
          content:
            text/plain: {schema: {type: string}}
    """
    registry = current_app.extensions["facefleet_metrics"].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
