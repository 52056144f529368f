"""Importing ``tasks`` builds nothing and calls nothing; ``tasks.app`` is the worker's app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, time
started = time.monotonic()
import tasks, tasks.client, tasks.errors, tasks.keys, tasks.results, tasks.factory
import webapp, webapp.errors
print(sorted(m for m in ("torch", "tasks.worker", "recognition.pipeline") if m in sys.modules))
"""


def test_importing_tasks_builds_no_app_and_loads_no_model() -> None:
    # On AWS, building an app looks up the queue's URL: with no credentials and no
    # network that would fail, so a clean import proves nothing is built.
    env = {**os.environ, "FACEFLEET_AWS_ENDPOINT": "aws", "AWS_ACCESS_KEY_ID": "",
           "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": "/nonexistent",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


WORKER_APP = """
import tasks
from tasks.factory import ENROLL, RECOGNIZE
from tasks.lifecycle import FacefleetTask
app = tasks.app
assert app is tasks.app, "built once per process"
assert all(isinstance(app.tasks[name], FacefleetTask) for name in (RECOGNIZE, ENROLL))
assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
print("ok")
"""


def test_tasks_app_is_the_worker_app_with_the_tasks() -> None:
    # In a process of its own: Celery shares tasks between every app of a process.
    proc = subprocess.run([sys.executable, "-c", WORKER_APP], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
