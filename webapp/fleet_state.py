"""The autoscaler's published state, as the web tier reads it (pure parsing).

Contract with the autoscaler: after each decision the controller writes ONE JSON
object to ``s3://<model bucket>/<FACEFLEET_FLEET_STATE>`` (default key
``autoscaler/state.json``)::

    {
      "updated_at": 1761990000.5,          # epoch seconds of this write (required)
      "desired": 3, "max": 15,             # the controller's desired count and bound
      "instances": [{"id": "i-0abc", "name": "app-tier-instance-1",
                     "state": "running", "launch_time": "2026-11-01T10:00:00Z"}],
      "decisions": [{"at": 1761990000.5, "desired": 3, "reason": "scale-out", ...}]
    }

Extra keys are passed through under ``controller``. The web tier never writes it.
"""

from __future__ import annotations

import json
import math
from typing import Any

PASSED_KEYS = ("desired", "max", "instances", "decisions")
MAX_DECISIONS = 50


class FleetStateError(ValueError):
    """The published state object is not valid JSON of the agreed shape."""


def parse_fleet_state(raw: bytes, now: float, stale_after: float) -> dict[str, Any]:
    """Turn the object's bytes into the ``/api/v1/fleet`` fields.

    ``now`` and ``updated_at`` are epoch seconds; the state is ``stale`` when older than
    ``stale_after`` seconds (the controller is probably not running).
    """
    try:
        state = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FleetStateError(f"fleet state is not JSON: {exc}") from None
    if not isinstance(state, dict):
        raise FleetStateError("fleet state must be a JSON object")
    updated = state.get("updated_at")
    if not isinstance(updated, int | float) or isinstance(updated, bool) or not math.isfinite(
            updated):
        raise FleetStateError("fleet state lacks a numeric 'updated_at' (epoch seconds)")
    instances = state.get("instances", [])
    if not isinstance(instances, list):
        raise FleetStateError("fleet state 'instances' must be a list")
    decisions = state.get("decisions", [])
    if not isinstance(decisions, list):
        raise FleetStateError("fleet state 'decisions' must be a list")
    age = max(0.0, now - float(updated))
    extra = {k: v for k, v in state.items() if k not in (*PASSED_KEYS, "updated_at")}
    return {
        "desired": state.get("desired"),
        "max": state.get("max"),
        "instances": instances,
        "decisions": decisions[-MAX_DECISIONS:],
        "autoscaler": {"published": True, "updated_at": float(updated), "age_s": age,
                       "stale": age > stale_after, "controller": extra},
    }


def unpublished(reason: str) -> dict[str, Any]:
    """The fields when no controller has published yet (fixed-size fleet)."""
    return {
        "desired": None,
        "max": None,
        "instances": [],
        "decisions": [],
        "autoscaler": {"published": False, "reason": reason},
    }
