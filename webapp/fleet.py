"""``GET /api/v1/fleet``: queue depth, resource names, endpoint, and the autoscaler's
published state (instances, desired, max, recent decisions).

The state object's schema belongs to :mod:`autoscaler.state`; this module only turns a
parsed state into the route's fields (:func:`fleet_fields`, pure).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from autoscaler.errors import StateError
from autoscaler.state import is_number, parse_state
from config.aws import error_code, is_missing
from webapp.errors import translate_backend_error
from webapp.services import Services, get_services

bp = Blueprint("fleet", __name__, url_prefix="/api/v1")

#: State fields lifted to the top of the route's answer; the rest goes under
#: ``autoscaler.controller``.
LIFTED = ("desired", "max", "instances", "decisions")
MAX_DECISIONS = 50


@bp.get("/fleet")
def fleet() -> Response:
    """The fleet as JSON; 503 only when the request queue itself cannot be read.
    ---
    get:
      summary: Queue depth, instances, the autoscaler's state, endpoint and names
      operationId: getFleet
      responses:
        "200":
          description: The fleet.
          content:
            application/json: {schema: Fleet}
        "503": Unavailable
    """
    services = get_services()
    settings = services.settings
    depth = services.client.queue_depth()
    body: dict[str, Any] = {
        "endpoint": settings.aws_endpoint or "aws",
        "region": settings.region,
        "queue": {"name": settings.queue, "dead_letter_queue": settings.dead_letter_queue,
                  "visible": depth.visible, "in_flight": depth.in_flight},
        "buckets": {"input": settings.input_bucket, "output": settings.output_bucket,
                    "model": settings.model_bucket},
        "state_object": f"s3://{settings.output_bucket}/{settings.fleet_state_key}",
    }
    body.update(read_state(services))
    return jsonify(body)


def read_state(services: Services) -> dict[str, Any]:
    """Read the published state as the route's fields; an unpublished or broken one is
    reported, not raised, so queue depth stays visible even without a controller."""
    settings = services.settings
    try:
        raw = services.s3.get_object(Bucket=settings.output_bucket,
                                     Key=settings.fleet_state_key)["Body"].read()
        return fleet_fields(parse_state(raw), time.time(), services.web.fleet_stale_after)
    except StateError as exc:
        return unpublished(str(exc))
    except Exception as exc:
        if is_missing(exc):
            return unpublished("no autoscaler has published state yet (fixed worker fleet)")
        mapped = translate_backend_error(exc)
        if mapped is None:
            raise
        code = error_code(exc)
        return unpublished(f"could not read the state object: {code}" if code else
                           mapped.message)


def fleet_fields(state: dict[str, Any], now: float, stale_after: float) -> dict[str, Any]:
    """The route's fields of a parsed state: ``desired``, ``max``, ``instances`` (each
    with an ISO ``launch_time``), the last decisions, and ``autoscaler`` with the
    state's age (``stale`` past ``stale_after`` seconds: the controller is probably
    not running) and its other fields under ``controller``."""
    age = max(0.0, now - float(state["updated"]))
    extra = {k: v for k, v in state.items() if k not in (*LIFTED, "updated")}
    return {
        "desired": state.get("desired"),
        "max": state.get("max"),
        "instances": [_with_launch_time(i) for i in state["instances"]],
        "decisions": state["decisions"][-MAX_DECISIONS:],
        "autoscaler": {"published": True, "updated_at": float(state["updated"]),
                       "age_s": age, "stale": age > stale_after, "controller": extra},
    }


def _with_launch_time(instance: Any) -> Any:
    """The instance with ``launch_time`` (ISO 8601, UTC) added from ``since`` (epoch s)."""
    if not isinstance(instance, dict) or "launch_time" in instance:
        return instance
    since = instance.get("since")
    if not is_number(since):
        return instance
    stamp = datetime.fromtimestamp(since, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**instance, "launch_time": stamp}


def unpublished(reason: str) -> dict[str, Any]:
    """The fields when no controller has published yet (fixed-size fleet)."""
    return {
        "desired": None,
        "max": None,
        "instances": [],
        "decisions": [],
        "autoscaler": {"published": False, "reason": reason},
    }
