"""Per-process worker state: the recognizer and AWS clients, loaded once per process.

The recognizer (weights, MTCNN, gallery) is built before the first task by
:func:`preload`: in each pool child (prefork) or in the worker process itself (solo
and threads pools); :mod:`tasks.worker` wires that to Celery's signals. The parent of
a prefork pool never loads it, so every child starts from a clean torch state after
the fork.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.aws import s3_client, sqs_client
from config.serving import ServingSettings
from config.settings import Settings
from tasks.batching import Batcher
from tasks.objectstore import ObjectStore

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

    from recognition.errors import ImageError
    from recognition.pipeline import Recognizer
    from recognition.types import Recognition

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What every task in this process shares."""

    settings: Settings
    serving: ServingSettings
    s3: S3Client
    sqs: SQSClient
    #: The request path's S3 reads and writes (see tasks.objectstore for why not ``s3``).
    objects: ObjectStore
    recognizer: Recognizer
    load_seconds: float
    #: Runs this process's recognitions, batched across its concurrent tasks
    #: (tasks.batching); as many batches at once as compute_slots allows.
    batcher: Batcher[Recognition | ImageError]


def compute_slots(cpus: int, torch_threads: int) -> int:
    """How many recognitions may run at once in one process: one per ``torch_threads``
    of the CPUs it may use, at least one.

    With the threads pool, more tasks than that recognising at once only interleave on
    the same cores and evict each other's caches, which costs CPU per image; fewer, and
    the pool's other threads still overlap their S3 and SQS round trips with the
    recognition in progress.
    """
    return max(1, cpus // max(1, torch_threads))


_state: WorkerState | None = None
_lock = threading.Lock()


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
            # Deferred: torch and the models load here, in workers only, never in the
            # processes that merely import tasks (the web tier, the controller).
            from recognition.pipeline import Recognizer

            started = time.perf_counter()
            s3 = s3_client(settings, "worker")
            recognizer = Recognizer.from_settings(settings, s3_client=s3)
            batcher: Batcher[Recognition | ImageError] = Batcher(
                recognizer.recognize_many, max_batch=serving.batch_max,
                max_wait_s=serving.batch_wait,
                slots=compute_slots(len(os.sched_getaffinity(0)), settings.torch_threads))
            _state = WorkerState(
                settings, serving, s3, sqs_client(settings, "worker"),
                ObjectStore.from_settings(settings), recognizer,
                time.perf_counter() - started, batcher)
            log_loaded(_state)
            # The model, torch and the libraries are hundreds of thousands of objects that
            # live as long as the process: move them out of the collector's reach, so no
            # full collection walks them in the middle of a request (a few hundred ms
            # each), and a forked worker never touches their pages.
            gc.collect()
            gc.freeze()
    return _state


def log_loaded(state: WorkerState) -> None:
    """Say that the recognizer is loaded (deploy.stack waits for this line)."""
    log.info("recognizer loaded in %.2f s (weights %s)", state.load_seconds,
             state.settings.weights)


def state() -> WorkerState:
    """This process's state, loading it now if no signal did (first task)."""
    return _state if _state is not None else preload()


def loaded() -> WorkerState | None:
    """This process's state if it is loaded, else None."""
    return _state


# ---- the worker's main process (prefork parent): SQS calls for lost tasks ----------

_main_sqs: SQSClient | None = None


def main_process_sqs(settings: Settings) -> SQSClient:
    """An SQS client for the main process (requeue and signals of lost tasks)."""
    global _main_sqs
    if _main_sqs is None:
        _main_sqs = sqs_client(settings, "worker")
    return _main_sqs
