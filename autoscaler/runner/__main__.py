"""``python -m autoscaler.runner``: run the embedded runner until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from autoscaler import logs
from autoscaler.ec2 import Ec2Fleet
from autoscaler.runner.launchers import CommandLauncher, ForkLauncher, Launcher
from autoscaler.runner.sync import Runner
from config.autoscaler import AutoscalerSettings
from config.aws import ec2_client
from config.env import ConfigError
from config.serving import ServingSettings
from config.settings import Settings
from tasks.drain import CeleryDrainer, drain_seconds
from tasks.factory import make_app

log = logging.getLogger("facefleet.runner")
CELERY_WORKER = ["celery", "-A", "tasks", "worker"]


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m autoscaler.runner",
                                     description=__doc__)
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="folder for one log file per worker (default: discard)")
    args = parser.parse_args(argv)
    logs.setup()
    try:
        settings = Settings.from_env()
        scaler = AutoscalerSettings.from_env()
        serving = ServingSettings.from_env()
    except ConfigError as err:
        print(f"runner: configuration error: {err}", file=sys.stderr)
        return 2
    if not settings.embedded:
        print("runner: FACEFLEET_AWS_ENDPOINT=aws: on AWS the instances run their own "
              "workers; the runner is for the embedded endpoint only", file=sys.stderr)
        return 2
    fleet = Ec2Fleet(ec2_client(settings), scaler)
    batch_threads = serving.worker_concurrency if serving.batch_max > 1 else 0

    def worker_argv(name: str) -> list[str]:
        return scaler.worker_argv(name, settings.queue, batch_threads)

    launcher: Launcher
    if scaler.runner_fork:
        if worker_argv("x")[:4] != CELERY_WORKER:
            print(f"runner: FACEFLEET_RUNNER_FORK=true needs a worker command starting with "
                  f"'celery -A tasks worker', not {scaler.worker_command!r}; set "
                  f"FACEFLEET_RUNNER_FORK=false to run any command", file=sys.stderr)
            return 2
        launcher = ForkLauncher(lambda name: worker_argv(name)[4:], args.log_dir)
    else:
        launcher = CommandLauncher(worker_argv,
                                   {"FACEFLEET_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"},
                                   args.log_dir, cwd=Path(os.getcwd()))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    drain_s = drain_seconds(serving, scaler.runner_drain_s)
    runner = Runner(fleet.list, launcher, scaler.runner_stop_timeout_s,
                    drain=CeleryDrainer(make_app(settings, serving), settings.queue),
                    drain_s=drain_s)
    log.info("runner up: role %s, poll %.2fs, %s workers, drain %.1fs", scaler.role,
             scaler.runner_poll_s, "forked" if scaler.runner_fork else "command", drain_s)
    runner.run(stop, scaler.runner_poll_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
