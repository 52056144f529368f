"""facefleet's Celery side: the tasks, the client that sends them, and the worker.

- :mod:`tasks.factory` builds Celery apps from the settings; :mod:`tasks.worker` is the
  worker's app (``celery -A tasks worker`` reads ``tasks.app``, which is built on first
  access: importing ``tasks`` or any module in it builds nothing and calls nothing);
- :mod:`tasks.recognize` and :mod:`tasks.enroll` are the tasks, :mod:`tasks.lifecycle`
  what happens around each run (completion signal, lost runs retried or
  dead-lettered), :mod:`tasks.state` what a worker process loads once;
- :mod:`tasks.client` is the web tier's door (submit, await, collect), with
  :mod:`tasks.completion` (reply queues), :mod:`tasks.results` (the S3 result object)
  and :mod:`tasks.objectstore` (the request path's S3 calls); :mod:`tasks.keys` says
  where each object lives and which names are allowed;
- :mod:`tasks.transport` stands apart: a kombu transport (SQS + SNS broadcast) that
  gives Celery inspect, remote control and events over SQS. It knows nothing of
  facefleet's tasks and is selected by ``broker_transport`` in the Celery config.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # ``celery -A tasks`` looks up ``tasks.app``: build the worker's app only then.
    if name == "app":
        from tasks.worker import worker_app

        return worker_app()
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
