"""``GET /dashboard`` (the live page) and ``GET /api/v1/dashboard`` (what it polls).

The JSON has three parts:

- ``fleet``: queue depth (visible, in flight) and the autoscaler's published state
  (``webapp.fleet.read_state``) summarised by :mod:`webapp.dashboard.fleet`: instances
  by state, desired vs actual, the recent decisions;
- ``events``: the Celery-event aggregate of this web process
  (:mod:`webapp.dashboard.stats`):
  tasks per second, latency and runtime percentiles, workers and their heartbeats,
  recent tasks; ``null`` when events are off (``FACEFLEET_DASHBOARD_EVENTS=false`` or
  ``FACEFLEET_MONITORING=false``);
- ``monitor``: the state of this process's event listener
  (:mod:`webapp.dashboard.monitor`).

Either route starts the listener if it is not running in this process, and so does
``GET /metrics`` (a Prometheus scrape counts as a viewer, so the workers' visibility
counters stay live: see webapp/ops.py); no other route does. Every number is per web
process: with several gunicorn workers each keeps its own aggregate (all see every
event, but each from when it started listening).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template

from config.dashboard import DashboardSettings
from config.monitoring import MonitoringSettings
from tasks.factory import make_app
from webapp.dashboard.fleet import summarize_fleet
from webapp.dashboard.monitor import EventsMonitor
from webapp.dashboard.stats import EventAggregate
from webapp.errors import translate_backend_error
from webapp.fleet import read_state
from webapp.services import Services, get_services

bp = Blueprint("dashboard", __name__)

EXTENSION = "facefleet_dashboard"


@dataclass
class Dashboard:
    """The dashboard's settings and this app's event monitor."""

    settings: DashboardSettings
    monitor: EventsMonitor
    events_off_reason: str | None = None


def init_app(app: Flask, config: Mapping[str, Any]) -> Dashboard:
    """Attach the (not yet started) monitor and register the routes.

    ``config`` may hold ``FACEFLEET_DASHBOARD`` (a ``DashboardSettings``) and
    ``FACEFLEET_MONITORING`` (a ``MonitoringSettings``); otherwise the environment.
    """
    settings: DashboardSettings = config.get("FACEFLEET_DASHBOARD") or \
        DashboardSettings.from_env()
    monitoring: MonitoringSettings = config.get("FACEFLEET_MONITORING") or \
        MonitoringSettings.from_env()
    services: Services = app.extensions["facefleet"]
    reason = None
    if not settings.events:
        reason = "FACEFLEET_DASHBOARD_EVENTS is false"
    elif not monitoring.enabled:
        reason = "FACEFLEET_MONITORING is false: workers send no events over plain SQS"
    aggregate = EventAggregate(window_s=settings.window_s, rate_window_s=settings.rate_window_s,
                               history_s=settings.history_s,
                               forget_after_s=settings.forget_after_s)
    # The listener's own Celery app (no tasks, no model), built on its first start.
    monitor = EventsMonitor(lambda: make_app(services.settings, monitoring=monitoring),
                            aggregate, idle_stop_s=settings.idle_stop_s,
                            enabled=reason is None)
    dashboard = Dashboard(settings, monitor, reason)
    app.extensions[EXTENSION] = dashboard
    app.register_blueprint(bp)
    return dashboard


def get_dashboard() -> Dashboard:
    """The current app's Dashboard (inside a request or app context)."""
    dashboard: Dashboard = current_app.extensions[EXTENSION]
    return dashboard


@bp.get("/dashboard")
def page() -> str:
    """The live page; it polls ``/api/v1/dashboard`` every FACEFLEET_DASHBOARD_POLL s."""
    dashboard = get_dashboard()
    dashboard.monitor.touch()
    return render_template("dashboard.html", poll_ms=int(dashboard.settings.poll_s * 1000),
                           events_off_reason=dashboard.events_off_reason)


@bp.get("/api/v1/dashboard")
def data() -> Response:
    """Fleet, events and listener state as JSON (never 503: parts report their errors).
    ---
    get:
      summary: What the dashboard page shows (fleet, Celery events, listener state)
      operationId: getDashboard
      responses:
        "200":
          description: The dashboard's data.
          content:
            application/json: {schema: Dashboard}
    """
    dashboard = get_dashboard()
    dashboard.monitor.touch()
    services = get_services()
    fleet = summarize_fleet(read_queue(services), read_state(services))
    # Events last, so the AWS reads above do not age them; generated_at is their moment.
    events = dashboard.monitor.snapshot() if dashboard.monitor.enabled else None
    body = {
        "generated_at": events["now"] if events else time.time(),
        "poll_s": dashboard.settings.poll_s,
        "fleet": fleet,
        "events": events,
        "monitor": {**dashboard.monitor.status(), "off_reason": dashboard.events_off_reason},
    }
    return jsonify(body)


def read_queue(services: Services) -> dict[str, Any]:
    """Queue depth, or why it cannot be read (the rest of the page stays useful)."""
    try:
        depth = services.client.queue_depth()
    except Exception as exc:
        mapped = translate_backend_error(exc)
        if mapped is None:
            raise
        return {"ok": False, "message": mapped.message}
    return {"ok": True, "name": services.settings.queue, "visible": depth.visible,
            "in_flight": depth.in_flight}
