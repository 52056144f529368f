"""The instances' systemd units (deploy/systemd/): systemd's own verifier, and the worker
unit's start and stop commands run as processes against the embedded stack, as
systemd would run them: ExecStart, then on stop ExecStop (the drain) and SIGTERM."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import aws
from config.aws import read_queue_depth
from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from recognition.weights.sdist import celebrity_dataset
from tasks.client import RecognitionClient
from tests.deploy.imds import named_instance, serve_imds
from tests.tasks.conftest import TEST_SERVING_ENV

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALL = "/opt/facefleet"
SYSTEM_UNITS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def unit(name: str) -> configparser.ConfigParser:
    """A unit file, parsed (systemd's syntax is INI enough for these)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_units_pass_systemds_verifier(tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    system = next((p for p in SYSTEM_UNITS if (p / "sysinit.target").exists()), None)
    if verify is None or system is None:
        pytest.skip("systemd-analyze is missing: `make install-test` installs Debian's "
                    "systemd package")
    # A root holding systemd's own units, ours, and the programs they run.
    shutil.copytree(system, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    names = sorted(p.name for p in UNITS.glob("*.service"))
    for name in names:
        shutil.copy(UNITS / name, tmp_path / "etc/systemd/system" / name)
        service = unit(name)["Service"]
        for key in ("ExecStart", "ExecStop"):
            if key in service:
                program = tmp_path / shlex.split(service[key])[0].lstrip("/")
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    proc = subprocess.run([verify, "verify", f"--root={tmp_path}", *names],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), \
        proc.stdout + proc.stderr


def local(command: str) -> list[str]:
    """A unit's command line with the instance's install folder mapped onto this checkout."""
    argv = shlex.split(command)
    if argv[0] == f"{INSTALL}/.venv/bin/python":
        argv[0] = sys.executable
    return argv


@pytest.fixture
def imds() -> Iterator[str]:
    """The instance metadata of a worker instance named ``app-tier-instance-7``."""
    with serve_imds(named_instance("app-tier-instance-7")) as url:
        yield url


def test_worker_unit_takes_tasks_and_drains_on_stop(settings: Settings, imds: str,
                                                   tmp_path: Path) -> None:
    provision(settings, ServingSettings(), upload_weights=False)
    service = unit("facefleet-worker.service")["Service"]
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 90
    env = {**os.environ, **settings.to_env(), **TEST_SERVING_ENV,
           "FACEFLEET_IMDS_ENDPOINT": imds, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "worker.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(local(service["ExecStart"]), cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def wait_ready(runs: int) -> None:
        deadline = time.monotonic() + 120
        while log.read_text(errors="replace").count(" ready.") < runs:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    data = sorted((celebrity_dataset(settings.cache_dir) / "val").glob("*/*.jpg"))[0]\
        .read_bytes()
    client = RecognitionClient(settings)
    worker = start()
    try:
        wait_ready(1)
        assert "app-tier-instance-7@" in log.read_text()  # named after its Name tag
        first = client.submit(data, "one.jpg")
        assert client.wait(first, timeout=60)["request_id"] == first
        # A burst, then systemd's stop in the middle of it: ExecStop, then KillSignal.
        burst = [client.submit(data, f"b{i}.jpg") for i in range(6)]
        time.sleep(0.5)
        drain = subprocess.run(local(service["ExecStop"]), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60, check=False)
        assert drain.returncode == 0, drain.stderr
        worker.send_signal(getattr(signal, service["KillSignal"]))
        worker.wait(int(service["TimeoutStopSec"]))
        assert worker.returncode == 0, log.read_text()[-3000:]
        # Nothing was left invisible in the departed worker's hands.
        sqs = aws.sqs_client(settings)
        url = sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
        assert read_queue_depth(sqs, url).in_flight == 0
        # A new worker takes over what the first did not run: no task is lost.
        worker = start()
        wait_ready(2)
        for request_id in burst:
            assert client.wait(request_id, timeout=90)["request_id"] == request_id
    finally:
        client.close()
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
