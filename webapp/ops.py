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
    """Prometheus text: request counts, latency histogram, waiting requests, queue depth,
    and each worker's visibility-extension counts.
    ---
    get:
      summary: Prometheus metrics (text exposition format)
      operationId: getMetrics
      responses:
        "200":
          description: Requests by route and status, latency, waiting requests, queue
            depth, workers' visibility extensions and their failures.
          content:
            text/plain: {schema: {type: string}}
    """
    # A scrape counts as a dashboard viewer: it starts this process's event listener,
    # and regular scrapes keep it from its idle stop. Without that, the workers'
    # visibility-failure counters would exist only while a person watched the
    # dashboard, and an alert on them would be blind exactly when nobody looks. The
    # price is one open listener per web process while Prometheus scrapes
    # (docs/monitoring.md, cost table); FACEFLEET_DASHBOARD_EVENTS=false turns both off
    # (touch() is then a no-op).
    dashboard = current_app.extensions.get("facefleet_dashboard")
    if dashboard is not None:
        dashboard.monitor.touch()
    registry = current_app.extensions["facefleet_metrics"].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
