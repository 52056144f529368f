"""Fixtures: provisioned resources and real ``celery -A tasks worker`` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from recognition.weights.sdist import celebrity_dataset

ROOT = Path(__file__).resolve().parents[2]
#: Serving knobs for tests: short long-polls so workers stop quickly.
TEST_SERVING_ENV = {"FACEFLEET_SQS_WAIT_TIME": "2", "FACEFLEET_REDELIVERY_DELAY": "0"}


@dataclass
class RunningWorker:
    """A ``celery worker`` subprocess and its log."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        """Everything the worker logged so far."""
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """PIDs of the worker's pool processes."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker aimed at ``settings``."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env.update(TEST_SERVING_ENV)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_worker(settings: Settings, log_dir: Path, concurrency: int = 1,
                 pool: str = "prefork", timeout: float = 120.0,
                 extra_args: tuple[str, ...] = (), **extra_env: str) -> RunningWorker:
    """Start ``celery -A tasks worker`` and wait until its pool has loaded the model."""
    name = f"test-{uuid.uuid4().hex[:6]}"
    log_path = log_dir / f"{name}.log"
    env = worker_env(settings, **extra_env)
    cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-n", f"{name}@%h",
           "--loglevel=INFO", f"--pool={pool}", f"--concurrency={concurrency}",
           "--without-gossip", "--without-mingle", "--without-heartbeat", *extra_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    worker = RunningWorker(proc, log_path, env)
    deadline = time.monotonic() + timeout
    loads = 1 if pool != "prefork" else concurrency
    while time.monotonic() < deadline:
        text = worker.log()
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{text[-3000:]}")
        if " ready." in text and text.count("recognizer loaded") >= loads:
            return worker
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"worker not ready in {timeout:.0f} s:\n{worker.log()[-3000:]}")


@pytest.fixture
def provisioned(settings: Settings) -> Settings:
    """The test's settings with buckets, queues and an empty gallery created."""
    provision(settings, ServingSettings(), upload_weights=False)
    return settings


@pytest.fixture
def worker_factory(provisioned: Settings, tmp_path: Path
                   ) -> Iterator[Callable[..., RunningWorker]]:
    """Start workers on the provisioned settings; all are stopped at the end."""
    started: list[RunningWorker] = []

    def factory(**kwargs: object) -> RunningWorker:
        settings = kwargs.pop("settings", provisioned)
        worker = start_worker(settings, tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    try:
        yield factory
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
def worker(worker_factory: Callable[..., RunningWorker]) -> RunningWorker:
    """One worker (prefork, one process) on the provisioned settings."""
    return worker_factory()


@pytest.fixture(scope="session")
def celebrities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 5-celebrity dataset from the sdist (``train/<name>/*.jpg``, ``val/...``)."""
    cache = Path(os.environ.get("FACEFLEET_CACHE") or "~/.cache/facefleet").expanduser()
    return celebrity_dataset(cache)


def photo(root: Path, split: str, person: str, index: int = 0) -> tuple[bytes, str]:
    """The ``index``-th photo of ``person`` in ``split``: (bytes, filename)."""
    files = sorted((root / split / person).iterdir())
    return files[index].read_bytes(), files[index].name
