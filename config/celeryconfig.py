"""All Celery settings, derived from facefleet's settings (docs/architecture.md).

Every Celery app of the project (the worker's, the web tier's, the monitors') is built
by :func:`tasks.factory.make_app` from :func:`celery_config`. Every tuned value says
why it is what it is.

Broker: Amazon SQS through kombu's SQS transport, at ``FACEFLEET_AWS_ENDPOINT`` (the
embedded moto server or real AWS). Publishing (web tier) takes kombu's synchronous
boto3 path (``Channel._put`` calls ``send_message``); only a worker, inside its event
loop, uses the asynchronous pycurl client to long-poll. The transport is chosen in
one place, :attr:`config.serving.ServingSettings.broker_transport`, so an extension
(SNS fanout for inspect/events) can be swapped in without touching anything else.

Results: Celery's S3 backend in the output bucket under ``results/`` (one JSON object
per task, ``results/celery-task-meta-<id>``): the durable source of truth.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from config import monitoring
from config.aws import sqs_client
from config.monitoring import MonitoringSettings
from config.serving import ServingSettings
from config.settings import EMBEDDED_CREDENTIALS, Settings

#: Task-name prefix routed to the request queue.
TASK_PREFIX = "facefleet."
#: Key prefix of Celery results inside the output bucket (label objects sit at the root).
RESULT_PREFIX = "results/"
#: moto's default account id, part of every queue URL it hands out.
EMBEDDED_ACCOUNT_ID = "123456789012"


def queue_url(settings: Settings, name: str) -> str:
    """URL of the SQS queue ``name``.

    On the embedded endpoint the URL is known without a request (moto's fixed account);
    on AWS it is looked up once with GetQueueUrl (the queue must have been provisioned).
    """
    if settings.aws_endpoint is not None:
        return f"{settings.aws_endpoint}/{EMBEDDED_ACCOUNT_ID}/{name}"
    return sqs_client(settings).get_queue_url(QueueName=name)["QueueUrl"]


def broker_url(settings: Settings) -> str:
    """kombu URL of the SQS broker: the endpoint's host and port, or AWS itself."""
    if settings.aws_endpoint is None:
        # No host: kombu lets boto3 pick the regional endpoint and the credential chain.
        return "sqs://"
    parts = urlsplit(settings.aws_endpoint)
    user = quote(settings.embedded_access_key, safe="")
    secret = quote(EMBEDDED_CREDENTIALS["aws_secret_access_key"], safe="")
    return f"sqs://{user}:{secret}@{parts.netloc}/"


def celery_config(
    settings: Settings, serving: ServingSettings, monitoring_settings: MonitoringSettings,
    request_queue_url: str | None = None,
) -> dict[str, Any]:
    """The Celery configuration for these settings (a plain dict for ``app.conf.update``)."""
    url = request_queue_url or queue_url(settings, settings.queue)
    secure = settings.aws_endpoint is None or settings.aws_endpoint.startswith("https://")
    conf: dict[str, Any] = {
        "broker_url": broker_url(settings),
        "broker_transport": serving.broker_transport,
        # One dict, read by kombu's SQS channel.
        "broker_transport_options": {
            "region": settings.region,
            # The embedded endpoint speaks plain HTTP on loopback.
            "is_secure": secure,
            # Workers and publishers never list or create queues: the provisioner made
            # them (with the redrive policy), and a wrong name fails loudly instead of
            # silently creating a queue nobody consumes.
            "predefined_queues": {settings.queue: {"url": url}},
            # A received message stays hidden this long; the worker extends what it
            # holds (tasks/visibility.py), so a dead worker's messages return this soon.
            "visibility_timeout": serving.visibility_timeout,
            # Long polling: ReceiveMessage blocks server-side until a message arrives
            # (moto and SQS both return early), so pick-up is immediate and an idle
            # worker makes one request per wait period instead of spinning.
            "wait_time_seconds": serving.wait_time_seconds,
            # kombu adds this pause after an empty long poll; the long poll already
            # waited, so any extra pause is pure pick-up latency.
            "polling_interval": serving.polling_interval,
        },
        # Celery's S3 result backend in the output bucket, without its HEAD before each
        # successful write (one request less per answer; see tasks/results.py).
        "result_backend": "tasks.results:S3ResultBackend",
        "s3_bucket": settings.output_bucket,
        "s3_base_path": RESULT_PREFIX,
        "s3_region": settings.region,
        "s3_endpoint_url": settings.aws_endpoint,
        # moto takes any key; on AWS these stay None and boto3's credential chain
        # (instance role) applies.
        "s3_access_key_id": settings.embedded_access_key if settings.embedded else None,
        "s3_secret_access_key": (EMBEDDED_CREDENTIALS["aws_secret_access_key"]
                                 if settings.embedded else None),
        # Results live until someone removes them (S3 lifecycle on AWS); the S3 backend
        # has no expiry of its own.
        "result_expires": None,
        # JSON only, both ways: a message in any other format (pickle!) is refused by
        # the worker before its body is decoded, so it is never executed.
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        # Ack after the task ran: a worker that dies mid-task leaves the message in
        # SQS, which redelivers it (at most max_receives times, then the DLQ).
        "task_acks_late": True,
        # A lost worker process (killed, crashed on a poison image) means retry via
        # SQS, bounded by the redrive policy, not a silent ack.
        "task_reject_on_worker_lost": True,
        # A task that raised (bad image) has a clear failure result: ack it, never
        # retry it forever. A hard time limit counts as a lost run and is retried.
        "task_acks_on_failure": True,
        "task_acks_on_timeout": False,
        "task_time_limit": serving.task_time_limit,
        # One message at a time per process: with long tasks and many workers,
        # prefetching would hide messages from idle workers (and the autoscaler).
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": serving.worker_concurrency,
        # A pool child loads the model before it reports UP (seconds, more on a busy
        # machine); billiard's default 4 s would kill it mid-load, again and again.
        "worker_proc_alive_timeout": 120.0,
        "worker_pool": serving.worker_pool,
        # Every facefleet task goes to the provisioned request queue.
        "task_default_queue": settings.queue,
        "task_routes": {f"{TASK_PREFIX}*": {"queue": settings.queue}},
        # A STARTED state would cost one more S3 write per request on the hot path.
        "task_track_started": False,
        # Plain SQS has no broadcast: remote control and events come from the SNS
        # fanout transport extension (docs/monitoring.md), merged in by monitoring.apply
        # (FACEFLEET_MONITORING=false keeps plain SQS with both off).
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        # A task-sent event per request would cost the web tier one SNS publish each.
        "task_send_sent_event": False,
        # Retry the broker at start-up: the endpoint may come up after the worker.
        "broker_connection_retry_on_startup": True,
        "enable_utc": True,
        "timezone": "UTC",
    }
    return monitoring.apply(conf, monitoring_settings)
