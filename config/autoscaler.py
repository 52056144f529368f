"""Settings of the autoscaler (controller, EC2 fleet back end, embedded runner).

Two profiles share one declaration: ``embedded`` (the default: moto on loopback, where
instances are local worker processes that start in about a second) and ``aws``
(``FACEFLEET_AWS_ENDPOINT=aws``: real EC2 instances that take tens of seconds to boot
and bill a 60 s minimum per start). Where they differ, a setting's default is given
for both.

The worker command (``FACEFLEET_WORKER_COMMAND``) is split like a shell line and may
use ``{name}`` (the instance's Name tag) and ``{queue}``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.env import ConfigError, Invalid, load, profile, setting
from config.settings import parse_endpoint

ROLE_TAG = "facefleet:role"
SLOT_TAG = "facefleet:slot"
ORIGIN_TAG = "facefleet:origin"
# Solo pool on the preloaded model; no mingle/gossip: they wait for other workers'
# replies at start (about a second), which the first request of a burst would pay.
SOLO_POOL = "-P solo -c 1"
DEFAULT_WORKER_COMMAND = (
    f"celery -A tasks worker {SOLO_POOL} --prefetch-multiplier 1 --without-mingle "
    "--without-gossip -l INFO -n {name}@%h -Q {queue}"
)


def parse_command(raw: str) -> str:
    """A worker command line in which only ``{name}`` and ``{queue}`` are substituted."""
    try:
        argv = shlex.split(raw)
        for part in argv:
            part.format(name="x", queue="q")
    except (ValueError, KeyError, IndexError) as err:
        raise Invalid("is not a valid command line (only {name} and {queue} may be "
                      f"substituted): {err}") from None
    if not argv:
        raise Invalid("is an empty command")
    return raw


def parse_profile(raw: str) -> bool:
    """``embedded`` (True) or ``aws`` (False)."""
    if raw.lower() not in {"embedded", "aws"}:
        raise Invalid("must be embedded or aws")
    return raw.lower() == "embedded"


def parse_role(raw: str) -> str:
    """The role tag's value (EC2 tag values are at most 256 characters)."""
    if len(raw) > 200:
        raise Invalid("is longer than 200 characters")
    return raw


def _seconds(env: str, embedded: float, aws: float, doc: str, minimum: float = 0.0,
             maximum: float = 86400.0) -> Any:
    """A duration whose default depends on the profile."""
    return setting(env, embedded, doc, minimum=minimum, maximum=maximum,
                   derive=profile(embedded, aws), default_doc=f"{embedded:g} (aws: {aws:g})")


@dataclass(frozen=True)
class AutoscalerSettings:
    """The autoscaler: controller policy, EC2 launches and the embedded runner."""

    # The profile follows the endpoint (a variable config.settings owns and writes)
    # unless it is set: `aws` against the embedded endpoint runs the controller exactly
    # as on AWS, which is how the deployment's end-to-end test runs it.
    local_endpoint: bool = setting(
        "FACEFLEET_AWS_ENDPOINT", True, "whether the endpoint is an embedded one",
        parse=lambda raw: parse_endpoint(raw) is not None, exported=False,
        default_doc="`true`")
    embedded: bool = setting(
        "FACEFLEET_AUTOSCALER_PROFILE", True,
        "`embedded` or `aws`: the defaults below, and how the idle probe finds workers",
        parse=parse_profile, write=lambda embedded: "embedded" if embedded else "aws",
        derive=lambda seen: seen["local_endpoint"],
        default_doc="`embedded`, `aws` when the endpoint is `aws`")
    max_instances: int = setting("FACEFLEET_MAX_INSTANCES", 15,
                                 "most instances pending+running; also the slot count",
                                 minimum=1, maximum=1000)
    min_instances: int = setting("FACEFLEET_MIN_INSTANCES", 0,
                                 "fewest instances kept running", minimum=0, maximum=1000)
    tick_s: float = _seconds("FACEFLEET_TICK_SECONDS", 0.5, 5.0, "controller period",
                             minimum=0.05, maximum=3600.0)
    backlog_per_instance: float = setting(
        "FACEFLEET_BACKLOG_PER_INSTANCE", 1.0,
        "messages (visible + in flight) one instance absorbs; on AWS a backlog builds up "
        "during a 15-40 s boot", minimum=0.01, maximum=1e6, derive=profile(1.0, 3.0),
        default_doc="1 (aws: 3)")
    tasks_per_instance: int = setting(
        "FACEFLEET_TASKS_PER_INSTANCE", 1,
        "messages one instance's worker holds at once: its pool's concurrency (with "
        "batching, FACEFLEET_WORKER_CONCURRENCY); scale-in keeps in-flight / this "
        "instances", minimum=1, maximum=512)
    count_delayed: bool = setting("FACEFLEET_COUNT_DELAYED", False,
                                  "count delayed messages as load")
    idle_grace_s: float = _seconds(
        "FACEFLEET_IDLE_GRACE_SECONDS", 0.5, 30.0,
        "queue and in-flight seen empty this long (from the first empty reading): scale "
        "to the minimum")
    scale_in_window_s: float = _seconds(
        "FACEFLEET_SCALE_IN_WINDOW_SECONDS", 30.0, 60.0,
        "a partial scale-in follows the highest recommendation of this window "
        "(HPA-style stabilisation)")
    min_run_s: float = _seconds(
        "FACEFLEET_MIN_RUN_SECONDS", 0.0, 60.0,
        "never stop an instance running less than this (EC2 bills a 60 s minimum per "
        "start: stopping earlier saves nothing)")
    boot_timeout_s: float = _seconds("FACEFLEET_BOOT_TIMEOUT_SECONDS", 30.0, 600.0,
                                     "a launched instance pending longer is replaced")
    start_timeout_s: float = _seconds("FACEFLEET_START_TIMEOUT_SECONDS", 15.0, 300.0,
                                      "a started (warm) instance pending longer is replaced")
    warm_pool_size: int = setting(
        "FACEFLEET_WARM_POOL", 15,
        "stopped instances kept for a fast start (they cost only their disk)", minimum=0,
        derive=lambda seen: seen["max_instances"], default_doc="= max instances")
    launch_template: str | None = setting(
        "FACEFLEET_LAUNCH_TEMPLATE", None, "launch template of the workers: name or `lt-` id")
    ami: str | None = setting("FACEFLEET_AMI", None,
                              "image id (without a template; embedded: moto's first image)")
    instance_type: str = setting("FACEFLEET_INSTANCE_TYPE", "t3.small",
                                 "instance type (without a template)")
    user_data_file: Path | None = setting("FACEFLEET_USER_DATA", None,
                                          "path of a user-data file (without a template)")
    subnet_id: str | None = setting("FACEFLEET_SUBNET", None, "subnet id")
    security_group_ids: tuple[str, ...] = setting(
        "FACEFLEET_SECURITY_GROUPS", (), "comma-separated security group ids")
    instance_profile: str | None = setting("FACEFLEET_INSTANCE_PROFILE", None,
                                           "IAM instance profile name of the workers")
    key_name: str | None = setting("FACEFLEET_KEY_NAME", None, "EC2 key pair")
    role: str = setting("FACEFLEET_ROLE", "app-tier",
                        "value of the `facefleet:role` tag of our instances", parse=parse_role)
    name_prefix: str = setting("FACEFLEET_NAME_PREFIX", "app-tier-instance-",
                               "the `Name` tag is this prefix + the slot number")
    decision_history: int = setting("FACEFLEET_DECISION_HISTORY", 50,
                                    "recent decisions published with the fleet state",
                                    minimum=1, maximum=10000)
    idle_probe: bool = setting(
        "FACEFLEET_IDLE_PROBE", True,
        "on a partial scale-in, ask the workers (`inspect active`) which hold no task and "
        "stop those first")
    idle_probe_timeout_s: float = _seconds(
        "FACEFLEET_IDLE_PROBE_TIMEOUT", 0.3, 1.0, "seconds to wait for the workers' answers",
        minimum=0.01, maximum=60.0)
    runner_poll_s: float = setting("FACEFLEET_RUNNER_POLL_SECONDS", 0.2,
                                   "embedded runner: EC2 poll period", minimum=0.05,
                                   maximum=60.0)
    worker_command: str = setting(
        "FACEFLEET_WORKER_COMMAND", DEFAULT_WORKER_COMMAND,
        "embedded runner: command of one instance's worker (see the module docstring)",
        parse=parse_command, default_doc="`celery -A tasks worker -P solo ...`")
    runner_stop_timeout_s: float = setting(
        "FACEFLEET_RUNNER_STOP_TIMEOUT", 60.0,
        "embedded runner: seconds a warm shutdown may take before SIGKILL",
        minimum=0.1, maximum=86400.0)
    runner_fork: bool = setting(
        "FACEFLEET_RUNNER_FORK", True,
        "embedded runner: fork workers from a process with the model preloaded")
    runner_drain_s: float | None = setting(
        "FACEFLEET_RUNNER_DRAIN_SECONDS", None,
        "embedded runner: seconds between telling a leaving worker to stop consuming and "
        "its SIGTERM, so an open long poll returns (0: no drain)", minimum=0.0,
        maximum=3600.0, default_doc="SQS wait + 1")

    def instance_name(self, slot: int) -> str:
        """The ``Name`` tag of the instance in ``slot`` (1-based)."""
        return f"{self.name_prefix}{slot}"

    def worker_argv(self, name: str, queue: str, batch_threads: int = 0) -> list[str]:
        """The worker command for instance ``name`` as an argv list.

        ``batch_threads`` > 0 (dynamic batching on: FACEFLEET_BATCH_MAX > 1) turns the
        default command's solo pool into a threads pool of that many threads: a solo
        worker runs one task at a time, so it could never form a batch. A command of
        the operator's own is left as written (ServingSettings checks its pool when the
        worker reads its configuration).
        """
        command = self.worker_command
        if batch_threads > 0 and command == DEFAULT_WORKER_COMMAND:
            command = command.replace(SOLO_POOL, f"-P threads -c {batch_threads}")
        return [part.format(name=name, queue=queue) for part in shlex.split(command)]

    def user_data(self) -> str | None:
        """The user-data file's text, or None without one."""
        if self.user_data_file is None:
            return None
        try:
            return self.user_data_file.read_text()
        except OSError as err:
            raise ConfigError(f"FACEFLEET_USER_DATA={str(self.user_data_file)!r}: cannot "
                              f"read ({err})") from None

    def check(self) -> None:
        """What spans several settings."""
        if self.min_instances > self.max_instances:
            raise ConfigError(
                f"FACEFLEET_MIN_INSTANCES={self.min_instances} is above "
                f"FACEFLEET_MAX_INSTANCES={self.max_instances}")
        if self.warm_pool_size > self.max_instances:
            raise ConfigError(f"FACEFLEET_WARM_POOL={self.warm_pool_size} is above the "
                              f"maximum {self.max_instances} (FACEFLEET_MAX_INSTANCES)")
        self.user_data()  # readable now, not at the first launch

    def check_launchable(self) -> None:
        """The controller's own check: on AWS it must know what to launch (a worker
        instance reads these settings too, and launches nothing)."""
        if not self.embedded and not (self.ami or self.launch_template):
            raise ConfigError(
                "on AWS set FACEFLEET_LAUNCH_TEMPLATE (name or lt- id) or FACEFLEET_AMI "
                "so the autoscaler knows what to launch")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AutoscalerSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)
