"""The worker's Celery app: the facefleet tasks registered on it, and the recognizer
preloaded in every process that runs them.

``celery -A tasks worker`` finds it as ``tasks.app`` (built on first access, see
:mod:`tasks`); the embedded runner forks workers from it. Only worker processes build
it: everyone else (the web tier, the controller, the monitors) sends tasks by name
through a plain :func:`tasks.factory.make_app` and never imports torch.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery, signals

from config import redaction
from tasks.enroll import enroll
from tasks.factory import ENROLL, RECOGNIZE, make_app
from tasks.lifecycle import FacefleetTask
from tasks.recognize import recognize
from tasks.state import loaded, log_loaded, main_process_sqs, preload
from tasks.undecodable import UndecodableToDeadLetter
from tasks.visibility import VisibilityStep, note_held, release_unstarted


@functools.cache
def worker_app() -> Celery:
    """The worker's app, configured from the environment (one per process)."""
    app = make_app()
    # Every log record of this process (and its forks) is redacted when it is made:
    # no secret or presigned URL in a worker's log either.
    redaction.install()
    # Not shared: Celery would otherwise add them to every app of the process.
    app.task(name=RECOGNIZE, base=FacefleetTask, shared=False)(recognize)
    app.task(name=ENROLL, base=FacefleetTask, shared=False)(enroll)
    # Preload before the first task: in the worker itself for solo/threads pools, in
    # each pool child for prefork (whose parent never loads the model).
    signals.worker_init.connect(_preload_in_worker, weak=False)
    signals.worker_ready.connect(_report_preload, weak=False)
    signals.worker_process_init.connect(_preload_in_child, weak=False)
    # Keep held messages hidden in short steps; give back what never started at exit.
    app.steps["consumer"].add(VisibilityStep)
    app.steps["consumer"].add(UndecodableToDeadLetter)  # kept in the DLQ, not acked away
    signals.worker_shutting_down.connect(_note_held, weak=False)
    signals.worker_shutdown.connect(_release_unstarted, weak=False)
    return app


def preload_for(app: Celery) -> None:
    """Load this process's recognizer with ``app``'s settings."""
    preload(app.facefleet_settings, app.facefleet_serving)


def _pool_is_prefork(pool_cls: Any) -> bool:
    name = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
    return "prefork" in str(name) or str(name) == "processes"


def _preload_in_worker(sender: Any = None, **_: Any) -> None:
    # solo/threads pools run tasks in this process: load before consuming starts.
    if sender is not None and not _pool_is_prefork(getattr(sender, "pool_cls", "prefork")):
        preload_for(sender.app)


def _report_preload(**_: Any) -> None:
    # worker_init fires before Celery sets up logging, so a solo/threads worker's load
    # line would be lost; the stack waits for it, so say it again once logging is up.
    state = loaded()
    if state is not None:
        log_loaded(state)


def _preload_in_child(**_: Any) -> None:
    preload_for(worker_app())


def _note_held(**_: Any) -> None:
    # Sent by the shutdown signal handler, before the consumer closes and Celery
    # forgets what it reserved.
    note_held()


def _release_unstarted(sender: Any = None, **_: Any) -> None:
    # worker_shutdown fires after the pool has finished (warm shutdown): what is still
    # reserved never ran, and another worker can take it at once.
    if sender is not None and sender.app.facefleet_serving.visibility_extend_every > 0:
        release_unstarted(main_process_sqs(sender.app.facefleet_settings))
