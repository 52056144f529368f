"""The Celery app factory; ``tasks.app`` (built from the environment, in
``tasks/__init__.py``) is what
``celery -A tasks worker`` runs."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from config.celeryconfig import celery_config
from config.serving import ServingSettings
from config.settings import Settings

#: Modules that define the worker's tasks (and its per-process model preload).
TASK_MODULES = ("tasks.recognize", "tasks.enroll")


def make_app(
    settings: Settings | None = None,
    serving: ServingSettings | None = None,
    *,
    include: Sequence[str] = (),
    request_queue_url: str | None = None,
) -> Celery:
    """A Celery app configured from ``config.celeryconfig`` for these settings.

    Clients pass no ``include``: they send tasks by name and never import the model.
    """
    settings = settings or Settings.from_env()
    serving = serving or ServingSettings.from_env()
    app = Celery("facefleet", include=list(include), set_as_current=False)
    app.conf.update(celery_config(settings, serving, request_queue_url))
    # Kept on the app so tasks and request handlers read the same settings.
    app.facefleet_settings = settings  # type: ignore[attr-defined]
    app.facefleet_serving = serving  # type: ignore[attr-defined]
    return app
