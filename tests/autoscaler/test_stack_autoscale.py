"""``python -m deploy.stack up|status|down`` with the autoscaler (the default): the
controller and the runner instead of fixed workers, a request served from an empty
fleet, the state on ``/api/v1/fleet``, and everything (forked workers included) gone
after ``down``."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import requests

from deploy.embedded_aws import free_port
from recognition.weights.sdist import celebrity_dataset
from tests.deploy.test_stack import _post_image, _stack


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_autoscaled_stack_up_status_down(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update({
        "FACEFLEET_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "FACEFLEET_WEB_BIND": f"127.0.0.1:{free_port()}",
        "FACEFLEET_STACK_DIR": str(tmp_path / "stack"),
        "FACEFLEET_MAX_INSTANCES": "2",
    })
    env.pop("FACEFLEET_AUTOSCALE", None)
    up = _stack("up", env)
    state: dict = {}
    workers: list[int] = []
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        status = _stack("status", env)
        assert status.returncode == 0, status.stdout
        state = json.loads(status.stdout)
        assert state["up"] and state["web_answers"] and state["autoscale"]
        assert {p["name"] for p in state["processes"]} == {"moto", "web", "runner",
                                                          "controller"}
        cache = Path(os.environ.get("FACEFLEET_CACHE") or "~/.cache/facefleet").expanduser()
        image = sorted((celebrity_dataset(cache) / "val" / "madonna").iterdir())[0]
        answer = _post_image(state["web"] + "/", image.read_bytes(), image.name)
        assert answer == f"{image.stem}:Unknown"

        # the controller's published state, as the web tier serves it
        fleet = requests.get(state["web"] + "/api/v1/fleet", timeout=30).json()
        assert fleet["autoscaler"]["published"] and fleet["max"] == 2
        assert any(i["name"] == "app-tier-instance-1" for i in fleet["instances"])
        logs = {p["name"]: Path(p["log"]) for p in state["processes"]}
        assert '"action":"scale-out"' in logs["controller"].read_text()
        # ... and as `make status` summarises it, back at zero once idle
        deadline = time.monotonic() + 30
        while True:
            summary = json.loads(_stack("status", env).stdout)["fleet"]
            if summary["counts"]["running"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert summary["counts"]["running"] == 0 and summary["max"] == 2
        workers = [int(pid) for pid in re.findall(r"started worker \S+ \(pid (\d+)\)",
                                                  logs["runner"].read_text())]
        assert workers
    finally:
        down = _stack("down", env)
    assert down.returncode == 0, down.stderr
    for pid in [p["pid"] for p in state.get("processes", [])] + workers:
        assert not _alive(pid)
