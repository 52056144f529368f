"""A small Celery app for the monitoring tests: facefleet's SQS+SNS transport on moto.

Configured like the real app (predefined, provisioned queues; long polling; JSON
only) from the same environment variables, so real ``celery`` subprocesses and the
test process agree. Queues (created by the tests, see :func:`queue_names`):
``<FACEFLEET_QUEUE>`` shared by all workers, ``<queue>-w1`` / ``<queue>-w2`` for one
worker each, ``<queue>-extra`` for ``add_consumer``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from celery import Celery

# Imported here: `celery -A` puts the working directory on sys.path only while it
# imports this module, and kombu resolves the transport class later.
import tasks.transport  # noqa: F401
from config.monitoring import MonitoringSettings, apply
from config.settings import EMBEDDED_CREDENTIALS, Settings


def queue_names(base: str) -> tuple[str, str, str, str]:
    """The test queues: shared, worker 1's, worker 2's, and the add_consumer one."""
    return base, f"{base}-w1", f"{base}-w2", f"{base}-extra"


def make_app(env: Mapping[str, str] | None = None) -> Celery:
    """The test app for the endpoint and names in ``env`` (default: os.environ)."""
    settings = Settings.from_env(env)
    monitoring = MonitoringSettings.from_env(env)
    endpoint = settings.aws_endpoint or ""
    creds = EMBEDDED_CREDENTIALS
    broker = (f"sqs://{creds['aws_access_key_id']}:{creds['aws_secret_access_key']}@"
              f"{endpoint.split('://', 1)[1]}/")
    app = Celery("facefleet-monitoring-test", set_as_current=False)
    app.conf.update(apply({
        "broker_url": broker,
        "broker_transport_options": {
            "region": settings.region,
            "is_secure": False,
            # moto's fixed account id; the provisioned queues, as in production.
            "predefined_queues": {name: {"url": f"{endpoint}/123456789012/{name}"}
                                  for name in queue_names(settings.queue)},
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

    return app


app = make_app()
