"""``GET /api/v1/fleet``: queue depth, resource names, endpoint, and the autoscaler's
published state (instances, desired, max, recent decisions; see ``fleet_state``).
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError
from flask import Blueprint, Response, jsonify

from webapp.errors import translate_backend_error
from webapp.fleet_state import FleetStateError, parse_fleet_state, unpublished
from webapp.services import Services, get_services

bp = Blueprint("fleet", __name__, url_prefix="/api/v1")


@bp.get("/fleet")
def fleet() -> Response:
    """The fleet as JSON; 503 only when the request queue itself cannot be read."""
    services = get_services()
    settings = services.settings
    try:
        depth = services.client.queue_depth()
    except Exception as exc:
        mapped = translate_backend_error(exc)
        if mapped is None:
            raise
        raise mapped from None
    body: dict[str, Any] = {
        "endpoint": settings.aws_endpoint or "aws",
        "region": settings.region,
        "queue": {"name": settings.queue, "dead_letter_queue": settings.dead_letter_queue,
                  "visible": depth.visible, "in_flight": depth.in_flight},
        "buckets": {"input": settings.input_bucket, "output": settings.output_bucket,
                    "model": settings.model_bucket},
        "state_object": f"s3://{settings.output_bucket}/{services.web.fleet_state_key}",
    }
    body.update(read_state(services))
    return jsonify(body)


def read_state(services: Services) -> dict[str, Any]:
    """Read and parse the published state; an unpublished or broken one is reported, not
    raised, so queue depth stays visible even without a controller.
    """
    try:
        obj = services.s3.get_object(Bucket=services.settings.output_bucket,
                                     Key=services.web.fleet_state_key)
        raw = obj["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchKey", "404"}:
            return unpublished("no autoscaler has published state yet (fixed worker fleet)")
        return unpublished(f"could not read the state object: {code}")
    except Exception as exc:
        mapped = translate_backend_error(exc)
        if mapped is None:
            raise
        return unpublished(mapped.message)
    try:
        return parse_fleet_state(raw, time.time(), services.web.fleet_stale_after)
    except FleetStateError as exc:
        return unpublished(str(exc))
