"""``python -m deploy.stack up|status|down`` on free ports, with a real upload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from deploy.embedded_aws import free_port
from deploy.stack import Proc, _log_has
from recognition.weights.sdist import celebrity_dataset

ROOT = Path(__file__).resolve().parents[2]


def _stack(command: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.stack", command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _post_image(url: str, data: bytes, filename: str) -> str:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"inputFile\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read().decode()


def test_stack_up_status_down(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update({
        "FACEFLEET_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "FACEFLEET_WEB_BIND": f"127.0.0.1:{free_port()}",
        "FACEFLEET_STACK_DIR": str(tmp_path / "stack"),
        "FACEFLEET_AUTOSCALE": "false",  # the fixed fleet (the autoscaled one: tests/autoscaler)
        "FACEFLEET_WORKERS": "1",
        "FACEFLEET_SQS_WAIT_TIME": "2",
    })
    up = _stack("up", env)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        status = _stack("status", env)
        assert status.returncode == 0, status.stdout
        state = json.loads(status.stdout)
        assert state["up"] and state["web_answers"]
        assert {p["name"] for p in state["processes"]} == {"moto", "web", "worker-1"}
        assert state["endpoint"] == env["FACEFLEET_AWS_ENDPOINT"]
        assert state["queues"]["requests"] == "facefleet-requests"
        assert state["weights"].startswith("s3://facefleet-models/weights/")
        cache = Path(os.environ.get("FACEFLEET_CACHE") or "~/.cache/facefleet").expanduser()
        image = sorted((celebrity_dataset(cache) / "val" / "madonna").iterdir())[0]
        answer = _post_image(state["web"] + "/", image.read_bytes(), image.name)
        assert answer == f"{image.stem}:Unknown"
    finally:
        down = _stack("down", env)
    assert down.returncode == 0, down.stderr
    for proc in state["processes"]:
        assert not Path(f"/proc/{proc['pid']}").exists() or \
            Path(f"/proc/{proc['pid']}/stat").read_text().split()[2] == "Z"
    after = _stack("status", env)
    assert after.returncode == 1 and json.loads(after.stdout)["up"] is False


def test_readiness_reads_only_this_runs_log(tmp_path: Path) -> None:
    """Logs are appended across runs: an earlier run's "ready." must not count."""
    log = tmp_path / "worker-1.log"
    log.write_text("worker-1@vm ready.\nrecognizer loaded\n")
    proc = Proc("worker-1", 1, str(log), log_start=log.stat().st_size)
    assert not _log_has(proc, " ready.")
    with log.open("a") as f:
        f.write("recognizer loaded in 1 s\nworker-1@vm ready.\n")
    assert _log_has(proc, " ready.", "recognizer loaded")
