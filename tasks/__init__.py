"""facefleet's Celery app and tasks (DESIGN.md §4).

``from tasks import app`` gives the app configured from the environment; the worker
(``celery -A tasks worker``) imports :data:`tasks.factory.TASK_MODULES`, which preload
the recognizer once per process before the first task.
"""

from __future__ import annotations

from tasks.factory import TASK_MODULES, make_app

app = make_app(include=TASK_MODULES)

__all__ = ["app", "make_app"]
