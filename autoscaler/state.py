"""The fleet state the controller publishes for the web tier's ``/api/v1/fleet``.

One JSON object in the output bucket (key ``fleet/state.json`` by default), rewritten
every tick. Format (``version`` 1)::

    {"version": 1, "updated": <epoch s>, "tick_s": .., "min": .., "max": ..,
     "desired": .., "load": {"visible", "in_flight", "delayed"} | null,
     "counts": {"running", "pending", "stopped", "leaving"},
     "instances": [{"id", "name", "slot", "state", "since", "origin"}],
     "decisions": [{"time", "load", "current", "booting", "desired", "action",
                    "reason", "acts", "errors"}]}   # newest last
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from autoscaler.errors import AutoscalerError

STATE_VERSION = 1


class S3PutClient(Protocol):
    """The one S3 call the publisher needs (a boto3 S3 client is one)."""

    def put_object(self, **kwargs: Any) -> Any:
        """``PutObject(Bucket=, Key=, Body=, ContentType=)``."""
        ...


class StatePublisher:
    """Writes the state JSON to ``s3://bucket/key``."""

    def __init__(self, client: S3PutClient, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key

    def publish(self, state: dict[str, Any]) -> None:
        """Write ``state``; AutoscalerError when S3 refuses."""
        body = json.dumps(state, separators=(",", ":")).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                   ContentType="application/json")
        except (ClientError, BotoCoreError, ResponseParserError, OSError) as err:
            raise AutoscalerError(f"cannot publish s3://{self.bucket}/{self.key}: {err}"
                                  ) from err


def read_state(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """Read the published state (for the web tier); None when none was published yet."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NoSuchBucket"}:
            return None
        raise AutoscalerError(f"cannot read s3://{bucket}/{key}: {err}") from err
    except (BotoCoreError, ResponseParserError, OSError) as err:
        raise AutoscalerError(f"cannot read s3://{bucket}/{key}: {err}") from err
    state = json.loads(body)
    return state if isinstance(state, dict) else None
