"""The autoscaler's published state, as the web tier reads it (pure parsing).

The controller (``autoscaler/state.py``) rewrites ONE JSON object every tick at
``s3://<output bucket>/<FACEFLEET_FLEET_STATE_KEY>`` (default ``fleet/state.json``)::

    {"version": 1, "updated": <epoch s>, "tick_s": .., "min": .., "max": ..,
     "desired": .., "load": {...}, "counts": {"running", "pending", ...},
     "instances": [{"id", "name", "slot", "state", "since", "origin"}],
     "decisions": [{"time", "load", "current", "booting", "desired", "reason", ...}]}

``desired``, ``max``, ``instances`` and ``decisions`` are lifted to the top of
``/api/v1/fleet`` (each instance gains an ISO ``launch_time`` from ``since``); the
rest is passed through under ``autoscaler.controller``. The web tier never writes it.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

PASSED_KEYS = ("desired", "max", "instances", "decisions")
MAX_DECISIONS = 50


class FleetStateError(ValueError):
    """The published state object is not valid JSON of the agreed shape."""


def parse_fleet_state(raw: bytes, now: float, stale_after: float) -> dict[str, Any]:
    """Turn the object's bytes into the ``/api/v1/fleet`` fields.

    ``now`` and ``updated`` are epoch seconds; the state is ``stale`` when older than
    ``stale_after`` seconds (the controller is probably not running).
    """
    try:
        state = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FleetStateError(f"fleet state is not JSON: {exc}") from None
    if not isinstance(state, dict):
        raise FleetStateError("fleet state must be a JSON object")
    updated = state.get("updated")
    if not isinstance(updated, int | float) or isinstance(updated, bool) or not math.isfinite(
            updated):
        raise FleetStateError("fleet state lacks a numeric 'updated' (epoch seconds)")
    instances = state.get("instances", [])
    if not isinstance(instances, list):
        raise FleetStateError("fleet state 'instances' must be a list")
    decisions = state.get("decisions", [])
    if not isinstance(decisions, list):
        raise FleetStateError("fleet state 'decisions' must be a list")
    age = max(0.0, now - float(updated))
    extra = {k: v for k, v in state.items() if k not in (*PASSED_KEYS, "updated")}
    return {
        "desired": state.get("desired"),
        "max": state.get("max"),
        "instances": [_with_launch_time(i) for i in instances],
        "decisions": decisions[-MAX_DECISIONS:],
        "autoscaler": {"published": True, "updated_at": float(updated), "age_s": age,
                       "stale": age > stale_after, "controller": extra},
    }


def _with_launch_time(instance: Any) -> Any:
    """The instance with ``launch_time`` (ISO 8601, UTC) added from ``since`` (epoch s)."""
    if not isinstance(instance, dict) or "launch_time" in instance:
        return instance
    since = instance.get("since")
    if not isinstance(since, int | float) or isinstance(since, bool) or not math.isfinite(since):
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
