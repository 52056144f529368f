"""Create (idempotently) everything the service needs on an AWS endpoint.

    python -m deploy.provision            # for the settings in the environment

- input and output buckets; the model bucket with versioning (weights and gallery
  keep their history);
- the dead-letter queue, then the request queue with its redrive policy
  (``maxReceiveCount = FACEFLEET_MAX_RECEIVES``) and a visibility timeout above the
  longest task;
- the weights uploaded to the model bucket (once per sha256) and an empty gallery
  where none is stored;
- stale completion-signal reply queues removed.

Running it twice changes nothing the second time; a queue that exists with other
attributes is brought to the wanted ones.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from config.aws import (
    CONFLICT,
    MISSING_QUEUE,
    NO_SUCH_BUCKET,
    error_code,
    is_missing,
    s3_client,
    sqs_client,
)
from config.env import ConfigError
from config.serving import ServingSettings
from config.settings import Settings
from recognition.gallery import Gallery
from recognition.weights import ensure_weights, upload_weights
from tasks.completion import reap_stale_reply_queues

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeNameType

    #: A queue's attributes, by SQS's own names.
    QueueAttributes = dict[QueueAttributeNameType, str]

log = logging.getLogger(__name__)

#: Where uploaded weights go inside the model bucket.
WEIGHTS_PREFIX = "weights/"
#: SQS keeps a message at most 14 days; dead letters are kept that long for a person
#: to inspect and redrive.
DLQ_RETENTION = 14 * 24 * 3600


@dataclass
class Provisioned:
    """What :func:`provision` found or made (all names, URLs and what changed)."""

    buckets: list[str]
    queue_url: str
    dead_letter_queue_url: str
    weights_uri: str | None
    gallery: str
    created: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def provision(settings: Settings, serving: ServingSettings | None = None, *,
              upload_weights: bool = True) -> Provisioned:
    """Create or reconcile every bucket, queue and object; return what is there."""
    serving = serving or ServingSettings.from_env()
    s3 = s3_client(settings)
    sqs = sqs_client(settings)
    created: list[str] = []
    buckets = [settings.input_bucket, settings.output_bucket, settings.model_bucket]
    for bucket in buckets:
        if _ensure_bucket(s3, bucket, settings.region):
            created.append(f"s3://{bucket}")
    s3.put_bucket_versioning(Bucket=settings.model_bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    dlq_url = _ensure_queue(sqs, settings.dead_letter_queue,
                            {"MessageRetentionPeriod": str(DLQ_RETENTION)}, created)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue_url = _ensure_queue(sqs, settings.queue, request_queue_attributes(
        settings, serving, dlq_arn), created)
    weights_uri = _upload_weights(s3, settings, created) if upload_weights else None
    if _ensure_gallery(s3, settings):
        created.append(settings.gallery)
    reap_stale_reply_queues(sqs, serving.reply_queue_prefix, serving.reply_queue_ttl)
    return Provisioned(buckets, queue_url, dlq_url, weights_uri, settings.gallery, created)


def request_queue_attributes(settings: Settings, serving: ServingSettings,
                             dlq_arn: str) -> QueueAttributes:
    """Attributes of the request queue (pure)."""
    return {
        # Above the hard time limit: a running task's message never reappears.
        "VisibilityTimeout": str(serving.visibility_timeout),
        # Consumers that forget WaitTimeSeconds still long-poll.
        "ReceiveMessageWaitTimeSeconds": str(serving.wait_time_seconds),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(settings.max_receives)}),
    }


def _ensure_bucket(s3: S3Client, bucket: str, region: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if not is_missing(exc) and error_code(exc) != NO_SUCH_BUCKET:
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise
        return False
    return True


def _ensure_queue(sqs: SQSClient, name: str, attributes: QueueAttributes,
                  created: list[str]) -> str:
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if error_code(exc) not in MISSING_QUEUE:
            raise
        url = str(sqs.create_queue(QueueName=name, Attributes=attributes,
                                   tags={"facefleet:role": "requests"})["QueueUrl"])
        created.append(url)
        return url
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    changed = {k: v for k, v in attributes.items() if not _same(k, current.get(k), v)}
    if changed:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
        log.info("queue %s: updated %s", name, ", ".join(sorted(changed)))
    return url


def _same(key: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if key == "RedrivePolicy":
        a, b = json.loads(current), json.loads(wanted)
        return (a.get("deadLetterTargetArn") == b.get("deadLetterTargetArn")
                and int(a.get("maxReceiveCount", 0)) == int(b.get("maxReceiveCount", 0)))
    return str(current) == str(wanted)


def _upload_weights(s3: S3Client, settings: Settings, created: list[str]) -> str | None:
    """Upload the configured weights to the model bucket (idempotent, per sha256)."""
    if settings.weights.startswith("s3://"):
        return settings.weights  # already in a bucket
    info = ensure_weights(settings.weights, settings.cache_dir)
    key = f"{WEIGHTS_PREFIX}{info.name}-{info.sha256[:16]}.pt"
    return str(upload_weights(info, s3, settings.model_bucket, key))


def _ensure_gallery(s3: S3Client, settings: Settings) -> bool:
    """Store an empty gallery where none is (S3 galleries only); True if written."""
    if not settings.gallery.startswith("s3://"):
        return False
    bucket, _, key = settings.gallery[5:].partition("/")
    body = json.dumps(Gallery().to_json(), separators=(",", ":")).encode()
    try:
        # Conditional: never overwrite a gallery someone else just wrote.
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*",
                      ContentType="application/json")
    except ClientError as exc:
        if error_code(exc) in CONFLICT:
            return False
        raise
    return True


def main() -> int:
    """Provision for the environment's settings; print what is there as JSON."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = provision(Settings.from_env(), ServingSettings.from_env())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
