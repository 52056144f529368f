"""How the embedded runner turns an instance into a local worker process.

- ``CommandLauncher`` runs a command (by default ``celery -A tasks worker ...``) per
  instance: simple, but each worker imports torch and loads the model itself, seconds
  of CPU that 15 simultaneous starts share on two cores.
- ``ForkLauncher`` loads the recognizer once in the runner (torch limited to one thread
  *before* anything runs, so no OpenMP pool exists to be broken by ``fork``), then
  forks a child per instance that runs a solo Celery worker on the preloaded model.
  The model's tensors are shared copy-on-write; a child loads nothing before it
  consumes. The parent never runs inference.

Either way a worker dies with the runner (``PR_SET_PDEATHSIG``: SIGTERM, a warm
shutdown; :mod:`deploy.lifetime`) so a killed runner leaves no orphan, and a restarted
one starts afresh.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import boto3

from deploy.lifetime import child_setup, die_with_parent

log = logging.getLogger("facefleet.runner")


class WorkerHandle(Protocol):
    """A running worker process."""

    name: str
    pid: int

    def poll(self) -> int | None:
        """Exit status, or None while it runs."""
        ...

    def signal(self, sig: int) -> None:
        """Send ``sig`` (ignored when it already exited)."""
        ...


class Launcher(Protocol):
    """Starts the worker of one instance."""

    def spawn(self, name: str) -> WorkerHandle:
        """Start the worker for instance ``name``."""
        ...

    def close(self) -> None:
        """Release what the launcher holds."""
        ...


class PopenHandle:
    """A worker started with subprocess."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid

    def poll(self) -> int | None:
        """Exit status, or None while it runs."""
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)


class CommandLauncher:
    """Runs ``argv_for(name)`` per instance, with ``env`` added to this environment."""

    def __init__(self, argv_for: Callable[[str], Sequence[str]], env: Mapping[str, str],
                 log_dir: Path | None = None, cwd: Path | None = None) -> None:
        self.argv_for = argv_for
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.cwd = cwd

    def spawn(self, name: str) -> PopenHandle:
        """Start the command; output goes to ``<log_dir>/<name>.log`` (or is dropped)."""
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed below)
        try:
            proc = subprocess.Popen(  # preexec_fn is safe: the runner is single-threaded
                list(self.argv_for(name)), env=self.env, cwd=self.cwd, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=child_setup())
        finally:
            if not isinstance(out, int):
                out.close()
        return PopenHandle(name, proc)

    def close(self) -> None:
        """Nothing to release."""


class ForkHandle:
    """A worker forked from the runner."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self._status: int | None = None

    def poll(self) -> int | None:
        """Exit status (negative signal number when killed), or None while it runs."""
        if self._status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self._status = 0
                return self._status
            if pid:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def close_boto3_pools(*objects: Any) -> None:
    """Drop the HTTP connections of boto3 clients (or of a Celery S3 backend's resource)
    so forked children never share a socket (each child reconnects on first use)."""
    for obj in objects:
        client = getattr(getattr(obj, "_s3_resource", None), "meta", None)
        client = getattr(client, "client", obj)
        session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        if session is not None:
            session.close()


def warm_worker_imports(app: Any) -> None:
    """Import what ``celery worker`` imports and build the result backend once, in the
    parent, so a forked child starts consuming in a fraction of a second."""
    for module in ("celery.bin.celery", "celery.bin.worker", "celery.apps.worker",
                   "celery.worker.consumer", "celery.worker.components",
                   "celery.concurrency.solo", "kombu.transport.SQS", "celery.backends.s3"):
        importlib.import_module(module)
    app.finalize(auto=True)
    _ = app.backend  # the S3 backend's boto3 resource, pools closed before forking
    # kombu's SQS channel makes its own boto3 session in the child: parse its model now.
    session = boto3.session.Session()
    session.client("sqs", region_name="us-east-1")
    session.client("s3", region_name="us-east-1")


class ForkLauncher:
    """Preloads the recognizer once, then forks one solo Celery worker per instance.

    ``worker_args(name)`` gives the ``celery worker`` arguments (without ``-A``).
    """

    def __init__(self, worker_args: Callable[[str], Sequence[str]],
                 log_dir: Path | None = None) -> None:
        self.worker_args = worker_args
        self.log_dir = log_dir
        # One intra-op thread *before* torch runs anything: no OpenMP pool is created,
        # so nothing is left half-alive in the forked children. Hence the deferred
        # imports: OpenMP reads its variable when torch's libraries load.
        os.environ["FACEFLEET_TORCH_THREADS"] = "1"
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        from tasks.state import preload
        from tasks.worker import worker_app

        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        # Building the app shares one botocore loader with every session to come
        # (tasks.factory), the forks' included.
        app = worker_app()
        started = time.perf_counter()
        state = preload(app.facefleet_settings, app.facefleet_serving)
        warm_worker_imports(app)
        close_boto3_pools(state.s3, state.sqs, app.backend)
        self.app = app
        log.info("recognizer preloaded for forked workers in %.2f s",
                 time.perf_counter() - started)

    def spawn(self, name: str) -> ForkHandle:
        """Fork a child that runs ``celery worker`` for instance ``name``."""
        if threading.active_count() > 1:
            log.warning("forking with %d threads alive", threading.active_count())
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = os.open(self.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                          0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.setsid()
                die_with_parent(parent=parent)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                if out is not None:
                    os.dup2(out, 1)
                    os.dup2(out, 2)
                logging.getLogger().handlers.clear()
                self.app.worker_main(["worker", *self.worker_args(name)])
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException:  # the child must never return into the runner
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        if out is not None:
            os.close(out)
        return ForkHandle(name, pid)

    def close(self) -> None:
        """Nothing to release (children are ended by the runner)."""
