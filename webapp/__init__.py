"""facefleet's web tier: the reference upload protocol, the upload page, the JSON API,
health and metrics. It validates, stores and enqueues, then awaits the S3-backed
result; it never runs the model.

Run it under gunicorn (see ``webapp/gunicorn_conf.py``)::

    gunicorn -c webapp/gunicorn_conf.py 'webapp:create_app()'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from config import redaction
from webapp import access, api, compat, dashboard, errors, fleet, identities, openapi, ops, services
from webapp.metrics import WebMetrics

# Multipart framing around one file, allowed on top of settings.max_upload_bytes.
FORM_OVERHEAD = 64 * 1024


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    ``config`` may hold Flask keys plus ``FACEFLEET_SETTINGS`` (a ``Settings``),
    ``FACEFLEET_WEB`` (a ``WebSettings``), ``FACEFLEET_DASHBOARD`` (a
    ``DashboardSettings``) and ``FACEFLEET_MONITORING`` (a ``MonitoringSettings``);
    anything missing comes from the environment. Nothing connects to AWS until the
    first request needs it.
    """
    config = dict(config or {})
    app = Flask(__name__)
    svc = services.init_app(app, config)
    # Before anything logs: no key, secret or request signature in any log line.
    redaction.install([svc.settings.api_key or ""])
    app.config.from_mapping(
        # One image plus its multipart framing; larger bodies get 413 before they are
        # read. The enrolment route raises it per request for several files.
        MAX_CONTENT_LENGTH=svc.settings.max_upload_bytes + FORM_OVERHEAD,
    )
    app.config.update({k: v for k, v in config.items() if not k.startswith("FACEFLEET_")})
    # Keep label/faces/timings in the order workers write them.
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.sort_keys = False

    metrics = WebMetrics(lambda: svc.client.queue_depth())
    metrics.init_app(app)
    app.extensions["facefleet_metrics"] = metrics
    errors.init_app(app)
    access.init_app(app)  # refuses contradictory key settings; guards the dashboard
    for blueprint in (compat.bp, api.bp, identities.bp, fleet.bp, ops.bp, openapi.bp):
        app.register_blueprint(blueprint)
    board = dashboard.init_app(app, config)  # /dashboard; its listener starts on first use
    metrics.watch_workers(board.monitor)  # the workers' visibility counts on /metrics
    return app
