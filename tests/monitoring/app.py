"""A small Celery app for the monitoring tests: facefleet's SQS+SNS transport on moto.

Configured like the real app (predefined, provisioned queues; long polling; JSON
only) from the same environment variables, so real ``celery`` subprocesses and the
test process agree. Queues (created by the tests): ``<FACEFLEET_QUEUE>`` shared by
all workers, ``<queue>-w1`` / ``<queue>-w2`` for one worker each, ``<queue>-extra``
for ``add_consumer``.
"""

from __future__ import annotations

import time

from celery import Celery

# Imported here: `celery -A` puts the working directory on sys.path only while it
# imports this module, and kombu resolves the transport class later.
import tasks.transport  # noqa: F401
from config.monitoring import MonitoringSettings, apply
from config.settings import EMBEDDED_CREDENTIALS, Settings

settings = Settings.from_env()
monitoring = MonitoringSettings.from_env()
QUEUES = (settings.queue, f"{settings.queue}-w1", f"{settings.queue}-w2",
          f"{settings.queue}-extra")


def queue_url(name: str) -> str:
    """moto's URL of queue ``name`` (fixed account id)."""
    return f"{settings.aws_endpoint}/123456789012/{name}"


def broker_url() -> str:
    """``sqs://`` URL of the embedded endpoint."""
    netloc = (settings.aws_endpoint or "").split("://", 1)[1]
    creds = EMBEDDED_CREDENTIALS
    return f"sqs://{creds['aws_access_key_id']}:{creds['aws_secret_access_key']}@{netloc}/"


app = Celery("facefleet-monitoring-test")
app.conf.update(apply({
    "broker_url": broker_url(),
    "broker_transport_options": {
        "region": settings.region,
        "is_secure": False,
        "predefined_queues": {name: {"url": queue_url(name)} for name in QUEUES},
        "wait_time_seconds": 10,
        "polling_interval": 0,
        "visibility_timeout": 60,
    },
    "task_default_queue": settings.queue,
    "accept_content": ["json"],
    "task_serializer": "json",
    "result_serializer": "json",
    "task_ignore_result": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}, monitoring))


@app.task(name="mon.add")
def add(x: int, y: int) -> int:
    """Add two numbers (the task every test sends)."""
    return x + y


@app.task(name="mon.sleep")
def sleep(seconds: float) -> float:
    """Sleep, so a task shows up in ``inspect active``."""
    time.sleep(seconds)
    return seconds
