"""The commands of one AWS worker instance, run by its systemd units (deploy/systemd/).

    python -m deploy.node worker                # ExecStart: the Celery worker
    python -m deploy.node drain                 # ExecStop: the drain (then systemd's SIGTERM)
    python -m deploy.node spot-watch --then CMD # on a spot interruption notice, run CMD

The worker is named ``<instance Name tag>@<host>`` like the embedded runner's workers
(the launch template publishes tags in the instance metadata), so the controller's idle
probe can tell which instance holds a task; without the tag it takes the host name.
Its command is ``FACEFLEET_WORKER_COMMAND``, the embedded runner's. ``drain`` is the
runner's drain (:mod:`tasks.drain`) for this worker; systemd sends SIGTERM (Celery's
warm shutdown) when it returns. ``spot-watch`` polls the instance metadata for the
two-minute spot interruption notice and then runs its command, by default stopping
the worker unit: the same drain and warm shutdown.

The instance metadata client is a few lines of urllib (IMDSv2: a session token, then
GETs) because botocore only exposes its fetcher for credentials, and the two paths
needed here do not justify another dependency.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from config import redaction
from config.autoscaler import AutoscalerSettings
from config.env import ConfigError
from config.node import NodeSettings
from config.serving import ServingSettings
from config.settings import Settings
from tasks.drain import drain_node, drain_seconds
from tasks.factory import make_app

log = logging.getLogger("facefleet.node")

#: How long a metadata token lives (IMDSv2 allows up to 6 hours).
TOKEN_TTL_S = 21600
#: The metadata service answers in milliseconds; a slow answer means it is not there.
IMDS_TIMEOUT_S = 2.0
DEFAULT_SPOT_ACTION = "systemctl stop facefleet-worker.service"


class InstanceMetadata:
    """IMDSv2: a session token, then GETs of metadata paths (None for a 404)."""

    def __init__(self, endpoint: str, timeout: float = IMDS_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._token: str | None = None

    def _request(self, method: str, path: str, headers: dict[str, str]) -> str:
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return str(response.read().decode())

    def get(self, path: str) -> str | None:
        """The text at ``path`` (``/latest/meta-data/...``), None when it does not exist;
        OSError when the service cannot be reached."""
        if self._token is None:
            self._token = self._request(
                "PUT", "/latest/api/token",
                {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)})
        try:
            return self._request("GET", path, {"X-aws-ec2-metadata-token": self._token})
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            if err.code == 401:  # the token expired: the next call gets a new one
                self._token = None
            raise


def instance_name(metadata: InstanceMetadata, fallback: str) -> str:
    """The instance's ``Name`` tag, or ``fallback`` without one (or without metadata)."""
    try:
        name = metadata.get("/latest/meta-data/tags/instance/Name")
    except OSError as err:
        log.warning("no instance metadata (%s): naming the worker %s", err, fallback)
        return fallback
    return name.strip() if name and name.strip() else fallback


def host_name() -> str:
    """The host part of a worker's node name, as Celery's ``%h`` expands it."""
    return socket.gethostname()


def spot_notice(metadata: InstanceMetadata) -> dict[str, str] | None:
    """The spot interruption notice (``{"action", "time"}``), or None while there is none."""
    text = metadata.get("/latest/meta-data/spot/instance-action")
    if text is None:
        return None
    try:
        notice = json.loads(text)
    except ValueError:
        return {"action": "unknown", "time": "", "raw": text[:200]}
    return {str(k): str(v) for k, v in notice.items()} if isinstance(notice, dict) else None


def watch_spot(metadata: InstanceMetadata, then: Sequence[str], poll_s: float,
               sleep: Callable[[float], None] = time.sleep) -> int:
    """Poll for the notice; when it comes, run ``then`` and return its exit status."""
    while True:
        try:
            notice = spot_notice(metadata)
        except OSError as err:
            log.warning("instance metadata unreachable (%s); retrying", err)
            notice = None
        if notice is not None:
            log.warning("spot interruption notice %s: running %s", notice, shlex.join(then))
            return subprocess.run(list(then), check=False).returncode
        sleep(poll_s)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (``worker`` does not return)."""
    parser = argparse.ArgumentParser(prog="python -m deploy.node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run this instance's Celery worker (replaces the process)")
    sub.add_parser("drain", help="stop this instance's worker from consuming; wait out a poll")
    spot = sub.add_parser("spot-watch", help="on a spot interruption notice, run a command")
    spot.add_argument("--then", default=DEFAULT_SPOT_ACTION,
                      help=f"command to run on the notice (default: {DEFAULT_SPOT_ACTION})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s")
    redaction.install()  # no secret or presigned URL in the instance's journal
    try:
        settings, serving = Settings.from_env(), ServingSettings.from_env()
        scaler, node = AutoscalerSettings.from_env(), NodeSettings.from_env()
    except ConfigError as err:
        print(f"deploy.node: configuration error: {err}", file=sys.stderr)
        return 2
    metadata = InstanceMetadata(node.imds_endpoint)
    if args.command == "spot-watch":
        return watch_spot(metadata, shlex.split(args.then), node.spot_poll_s)
    name = instance_name(metadata, fallback=host_name().split(".")[0])
    if args.command == "drain":
        drain_node(make_app(settings, serving), settings.queue, name, host_name(),
                   drain_seconds(serving, scaler.runner_drain_s))
        return 0
    argv_ = scaler.worker_argv(name, settings.queue,
                               serving.worker_concurrency if serving.batch_max > 1 else 0)
    if argv_[0] == "celery":  # this interpreter's Celery, whatever the unit's PATH
        argv_ = [sys.executable, "-m", *argv_]
    log.info("starting worker %s@%s: %s", name, host_name(), shlex.join(argv_))
    os.execvp(argv_[0], argv_)  # replaces this process: systemd signals Celery directly


if __name__ == "__main__":
    sys.exit(main())
