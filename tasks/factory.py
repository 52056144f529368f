"""The Celery app factory: every Celery app of the project is built here, from the
settings (:mod:`config.celeryconfig`).

Clients (the web tier, the controller, the monitors) build a plain app and send tasks
by name; the worker's app adds the tasks themselves (:func:`tasks.worker.worker_app`).
Building an app reads settings and, on AWS, looks up the request queue's URL: it
happens when a process asks for an app, never at import.
"""

from __future__ import annotations

from celery import Celery

from config.aws import share_botocore_loader
from config.celeryconfig import TASK_PREFIX, celery_config
from config.monitoring import MonitoringSettings
from config.serving import ServingSettings
from config.settings import Settings

RECOGNIZE = f"{TASK_PREFIX}recognize"
ENROLL = f"{TASK_PREFIX}enroll"


def make_app(settings: Settings | None = None, serving: ServingSettings | None = None,
             monitoring: MonitoringSettings | None = None, *,
             request_queue_url: str | None = None) -> Celery:
    """A Celery app configured for these settings (the environment's when omitted)."""
    settings = settings or Settings.from_env()
    serving = serving or ServingSettings.from_env()
    monitoring = monitoring or MonitoringSettings.from_env()
    # Celery builds its S3 result backend (a boto3 session) once per thread that sends
    # or runs a task: the web tier's request threads, a threads pool's workers. With
    # one botocore loader per process each costs a twelfth of the CPU (config/aws.py).
    share_botocore_loader()
    app = Celery("facefleet", set_as_current=False)
    app.conf.update(celery_config(settings, serving, monitoring, request_queue_url))
    # Kept on the app so tasks and request handlers read the same settings.
    app.facefleet_settings = settings
    app.facefleet_serving = serving
    return app
