"""``python -m autoscaler``: run the controller until SIGINT/SIGTERM.

Reads its settings from the environment, drives the EC2 API of the configured endpoint
(the embedded moto by default) from the request queue's depth, and publishes the fleet
state to ``s3://<output bucket>/<FACEFLEET_FLEET_STATE_KEY>``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from autoscaler import logs
from autoscaler.ec2 import Ec2Fleet
from autoscaler.idle import CeleryActivityProbe
from autoscaler.loop import Controller
from autoscaler.metrics import SqsLoadReader
from autoscaler.state import StatePublisher
from config.autoscaler import AutoscalerSettings
from config.aws import ec2_client, s3_client, sqs_client
from config.env import ConfigError
from config.settings import Settings
from tasks.factory import make_app


def activity_probe(settings: Settings, scaler: AutoscalerSettings
                   ) -> CeleryActivityProbe | None:
    """The probe asking workers what they hold (Celery inspect over SQS+SNS), or None
    when FACEFLEET_IDLE_PROBE=false."""
    if not scaler.idle_probe:
        return None
    app = make_app(settings)  # the workers' broker and monitoring transport; no tasks
    if scaler.embedded:  # the runner's workers are named <instance>@<this host>
        return CeleryActivityProbe.embedded(app, scaler.idle_probe_timeout_s)
    return CeleryActivityProbe(app, scaler.idle_probe_timeout_s)


def terminate_all(fleet: Ec2Fleet) -> int:
    """Terminate every instance of the fleet's role (running, stopped or pending)."""
    ids = [i.id for i in fleet.list()]
    fleet.terminate(ids)
    print(f"terminated {len(ids)} instance(s)" + (f": {', '.join(ids)}" if ids else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the controller and run it; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m autoscaler", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    parser.add_argument("--terminate-all", action="store_true",
                        help="terminate every instance of this role and exit (before "
                             "`terraform destroy`: the controller's instances are not "
                             "Terraform's)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every tick")
    args = parser.parse_args(argv)
    logs.setup(args.verbose)
    try:
        settings = Settings.from_env()
        scaler = AutoscalerSettings.from_env()
        scaler.check_launchable()
    except ConfigError as err:
        print(f"autoscaler: configuration error: {err}", file=sys.stderr)
        return 2
    if args.terminate_all:
        return terminate_all(Ec2Fleet(ec2_client(settings), scaler))
    probe = activity_probe(settings, scaler)
    controller = Controller(
        scaler,
        Ec2Fleet(ec2_client(settings), scaler),
        SqsLoadReader(sqs_client(settings), settings.queue),
        StatePublisher(s3_client(settings), settings.output_bucket, settings.fleet_state_key),
        idle_probe=probe,
    )
    if args.once:
        controller.tick()
        return 0
    if probe is not None:
        probe.warm()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("facefleet.autoscaler").info(
        "controller up: queue %s, max %d, tick %.2fs, endpoint %s", settings.queue,
        scaler.max_instances, scaler.tick_s, settings.aws_endpoint or "aws")
    controller.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
