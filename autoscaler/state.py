"""The fleet state: the one object the controller publishes and everyone else reads.

The controller rewrites ONE JSON object every tick, at
``s3://<output bucket>/<FACEFLEET_FLEET_STATE_KEY>`` (default ``fleet/state.json``);
the web tier's ``/api/v1/fleet`` and dashboard and ``make status`` read it. This module
is its schema for both sides: :func:`build_state` makes it, :func:`parse_state`
checks it. Format (``version`` 1)::

    {"version": 1, "updated": <epoch s>, "tick_s": .., "min": .., "max": ..,
     "desired": .., "load": {"visible", "in_flight", "delayed"} | null,
     "counts": {"running", "pending", "stopped", "leaving"},
     "instances": [{"id", "name", "slot", "state", "since", "origin"}],
     "decisions": [{"time", "load", "current", "booting", "stopped", "desired",
                    "action", "reason", "acts", "errors"}]}   # newest last

Readers are lenient where it costs nothing: only ``updated`` is required, and a
missing ``instances`` or ``decisions`` reads as empty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from botocore.exceptions import ClientError

from autoscaler.errors import StateError
from autoscaler.fleet import Instance, count
from config.autoscaler import AutoscalerSettings
from config.aws import CALL_ERRORS, NO_SUCH_BUCKET, error_code, is_missing

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

STATE_VERSION = 1


def build_state(settings: AutoscalerSettings, updated: float, desired: int,
                load: dict[str, int] | None, instances: Sequence[Instance],
                decisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The state object of one tick (``decisions`` oldest first)."""
    counts = count(instances)
    return {
        "version": STATE_VERSION, "updated": round(updated, 3),
        "tick_s": settings.tick_s, "min": settings.min_instances,
        "max": settings.max_instances, "desired": desired, "load": load,
        "counts": {"running": counts.running, "pending": counts.pending,
                   "stopped": counts.stopped, "leaving": counts.leaving},
        "instances": [i.to_dict() for i in instances],
        "decisions": list(decisions),
    }


def parse_state(raw: bytes) -> dict[str, Any]:
    """The state object from its bytes; StateError when it is not of this schema."""
    try:
        state = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"fleet state is not JSON: {exc}") from None
    if not isinstance(state, dict):
        raise StateError("fleet state must be a JSON object")
    if not is_number(state.get("updated")):
        raise StateError("fleet state lacks a numeric 'updated' (epoch seconds)")
    for key in ("instances", "decisions"):
        if not isinstance(state.setdefault(key, []), list):
            raise StateError(f"fleet state '{key}' must be a list")
    return state


def is_number(value: object) -> TypeGuard[int | float]:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


class StatePublisher:
    """Writes the state object to ``s3://bucket/key`` (a boto3 S3 client's PutObject)."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key

    def publish(self, state: dict[str, Any]) -> None:
        """Write ``state``; StateError when S3 refuses."""
        body = json.dumps(state, separators=(",", ":")).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                   ContentType="application/json")
        except CALL_ERRORS as err:
            raise StateError(f"cannot publish s3://{self.bucket}/{self.key}: {err}") from err


def read_state(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """The published state; None when none was published yet (no object, no bucket).

    StateError when it cannot be read or is not of this schema.
    """
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if is_missing(err) or error_code(err) == NO_SUCH_BUCKET:
            return None
        raise StateError(f"cannot read s3://{bucket}/{key}: {err}") from err
    except CALL_ERRORS as err:
        raise StateError(f"cannot read s3://{bucket}/{key}: {err}") from err
    return parse_state(body)
