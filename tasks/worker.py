"""Per-process worker state: the recognizer and AWS clients, loaded once per process.

The recognizer (weights, MTCNN, gallery) is built before the first task:
in each pool child on ``worker_process_init`` (prefork), or in the worker process on
``worker_init`` (solo and threads pools). The parent of a prefork pool never loads it,
so every child starts from a clean torch state after the fork.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from celery import signals

from config.serving import ServingSettings
from config.settings import Settings
from tasks.objectstore import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What every task in this process shares."""

    settings: Settings
    serving: ServingSettings
    s3: Any
    sqs: Any
    #: The request path's S3 reads and writes (see tasks.objectstore for why not ``s3``).
    objects: ObjectStore
    recognizer: Any
    load_seconds: float
    #: Recognitions allowed at once in this process (see compute_slots).
    compute: threading.BoundedSemaphore


def compute_slots(cpus: int, torch_threads: int) -> int:
    """How many recognitions may run at once in one process: one per ``torch_threads``
    of the CPUs it may use, at least one.

    With the threads pool, more tasks than that recognising at once only interleave on
    the same cores and evict each other's caches (measured: +3.5 ms of CPU per image
    with two tasks on one core); fewer, and the pool's other threads still overlap
    their S3 and SQS round trips with the recognition in progress.
    """
    return max(1, cpus // max(1, torch_threads))


_state: WorkerState | None = None
_lock = threading.Lock()


def aws_clients(settings: Settings) -> tuple[Any, Any]:
    """S3 and SQS clients for this process (boto3 clients must not cross a fork)."""
    # Checksums only where S3 requires them (botocore's default adds a CRC32 to every
    # PUT and checks one on every GET), and no client-side validation of parameters
    # the task built itself: about 5 % of the client CPU of each call, measured here.
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16,
                    parameter_validation=False, request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    s3 = boto3.client("s3", config=config, **settings.boto3_kwargs())
    sqs = boto3.client("sqs", config=config, **settings.boto3_kwargs())
    return s3, sqs


def preload(settings: Settings | None = None,
            serving: ServingSettings | None = None) -> WorkerState:
    """Build this process's state once (idempotent, thread-safe) and return it."""
    global _state
    if _state is not None:
        return _state
    with _lock:
        if _state is None:
            settings = settings or Settings.from_env()
            serving = serving or ServingSettings.from_env()
            from recognition.pipeline import Recognizer  # deferred: imports torch

            started = time.perf_counter()
            s3, sqs = aws_clients(settings)
            objects = ObjectStore.from_settings(settings)
            recognizer = Recognizer.from_settings(settings, s3_client=s3)
            elapsed = time.perf_counter() - started
            slots = compute_slots(len(os.sched_getaffinity(0)), settings.torch_threads)
            _state = WorkerState(settings, serving, s3, sqs, objects, recognizer, elapsed,
                                 threading.BoundedSemaphore(slots))
            _log_loaded(_state)
    return _state


def _log_loaded(state: WorkerState) -> None:
    # deploy.stack waits for this line in a worker's log before it reports "up".
    log.info("recognizer loaded in %.2f s (weights %s)", state.load_seconds,
             state.settings.weights)


def state() -> WorkerState:
    """This process's state, loading it now if no signal did (first task)."""
    return _state if _state is not None else preload()


def _pool_is_prefork(pool_cls: Any) -> bool:
    name = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
    return "prefork" in str(name) or str(name) == "processes"


@signals.worker_init.connect
def _preload_in_worker(sender: Any = None, **_: Any) -> None:
    # solo/threads pools run tasks in this process: load before consuming starts.
    if sender is not None and not _pool_is_prefork(getattr(sender, "pool_cls", "prefork")):
        _preload_from_app(sender.app)


@signals.worker_ready.connect
def _report_preload(**_: Any) -> None:
    # worker_init fires before Celery sets up logging, so a solo/threads worker's load
    # line would be lost; the stack waits for it, so say it again once logging is up.
    if _state is not None:
        _log_loaded(_state)


@signals.worker_process_init.connect
def _preload_in_child(**_: Any) -> None:
    from tasks import app  # the app ``celery -A tasks worker`` runs

    _preload_from_app(app)


def _preload_from_app(app: Any) -> None:
    preload(getattr(app, "facefleet_settings", None), getattr(app, "facefleet_serving", None))


# ---- the worker's main process (prefork parent): SQS calls for lost tasks ----------

_main_sqs: Any = None


def main_process_sqs(settings: Settings) -> Any:
    """An SQS client for the main process (requeue and signals of lost tasks)."""
    global _main_sqs
    if _main_sqs is None:
        _main_sqs = aws_clients(settings)[1]
    return _main_sqs
