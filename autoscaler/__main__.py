"""``python -m autoscaler``: run the controller until SIGINT/SIGTERM.

Reads Settings and AutoscalerSettings from the environment, drives the EC2 API of the
configured endpoint (the embedded moto by default) from the request queue's depth, and
publishes the fleet state to ``s3://<output bucket>/fleet/state.json``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import boto3

from autoscaler.ec2 import Ec2Fleet
from autoscaler.idle import CeleryActivityProbe
from autoscaler.loop import Controller
from autoscaler.metrics import SqsLoadReader
from autoscaler.state import StatePublisher
from config.autoscaler import AutoscalerSettings
from config.env import ConfigError
from config.settings import Settings


def activity_probe(scaler: AutoscalerSettings) -> CeleryActivityProbe | None:
    """The probe asking workers what they hold (Celery inspect over SQS+SNS), or None
    when FACEFLEET_IDLE_PROBE=false."""
    if not scaler.idle_probe:
        return None
    from tasks import app  # the workers' app: same broker, same monitoring transport

    if scaler.embedded:  # the runner's workers are named <instance>@<this host>
        return CeleryActivityProbe.embedded(app, scaler.idle_probe_timeout_s)
    return CeleryActivityProbe(app, scaler.idle_probe_timeout_s)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the controller and run it; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m autoscaler", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every tick")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        scaler = AutoscalerSettings.from_env()
    except ConfigError as err:
        print(f"autoscaler: configuration error: {err}", file=sys.stderr)
        return 2
    kwargs = settings.boto3_kwargs()
    probe = activity_probe(scaler)
    controller = Controller(
        scaler,
        Ec2Fleet(boto3.client("ec2", **kwargs), scaler),
        SqsLoadReader(boto3.client("sqs", **kwargs), settings.queue),
        StatePublisher(boto3.client("s3", **kwargs), settings.output_bucket, scaler.state_key),
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
