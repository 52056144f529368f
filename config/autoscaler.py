"""Settings of the autoscaler (controller, EC2 fleet back end, embedded runner).

Parsed once from the environment into a frozen dataclass and validated; a bad value is
one ConfigError naming the variable. Two profiles share one table: ``embedded`` (the
default, moto on loopback, where instances are local worker processes that start in
about a second) and ``aws`` (``FACEFLEET_AWS_ENDPOINT=aws``, real EC2 instances that
take tens of seconds to boot and bill a 60 s minimum per start).

| variable | embedded | aws | meaning |
| --- | --- | --- | --- |
| FACEFLEET_MAX_INSTANCES | 15 | 15 | most instances pending+running; also the slot count |
| FACEFLEET_MIN_INSTANCES | 0 | 0 | fewest instances kept running |
| FACEFLEET_TICK_SECONDS | 0.5 | 5 | controller period |
| FACEFLEET_BACKLOG_PER_INSTANCE | 1 | 3 | messages (visible + in flight) one instance absorbs |
|   |   |   | (aws: a backlog builds up during a ~15-40 s boot; 3 was best in the simulator) |
| FACEFLEET_COUNT_DELAYED | false | false | count delayed messages as load |
| FACEFLEET_IDLE_GRACE_SECONDS | 0.5 | 30 | queue and in-flight empty this long → scale to min |
| FACEFLEET_SCALE_IN_WINDOW_SECONDS | 2 | 60 | partial scale-in follows the highest recommendation |
|   |   |   | of this window (HPA-style stabilisation) |
| FACEFLEET_MIN_RUN_SECONDS | 0 | 60 | never stop an instance running less than this (EC2 |
|   |   |   | bills a 60 s minimum per start: stopping earlier saves nothing) |
| FACEFLEET_BOOT_TIMEOUT_SECONDS | 30 | 600 | a launched instance pending longer is replaced |
| FACEFLEET_START_TIMEOUT_SECONDS | 15 | 300 | a started (warm) instance pending longer: replaced |
| FACEFLEET_WARM_POOL | = max | = max | stopped instances kept for a fast start (EBS cost only) |
| FACEFLEET_LAUNCH_TEMPLATE | (unset) | (unset) | launch template name or id (``lt-<hex>``) |
| FACEFLEET_AMI | (first moto image) | required without a template | image id |
| FACEFLEET_INSTANCE_TYPE | t3.small | t3.small | instance type (AMI mode) |
| FACEFLEET_USER_DATA | (unset) | (unset) | path of a user-data file (AMI mode) |
| FACEFLEET_SUBNET | (unset) | (unset) | subnet id |
| FACEFLEET_SECURITY_GROUPS | (unset) | (unset) | comma-separated security group ids |
| FACEFLEET_INSTANCE_PROFILE | (unset) | (unset) | IAM instance profile name |
| FACEFLEET_KEY_NAME | (unset) | (unset) | EC2 key pair |
| FACEFLEET_ROLE | app-tier | app-tier | value of the ``facefleet:role`` tag of our instances |
| FACEFLEET_NAME_PREFIX | app-tier-instance- | same | ``Name`` tag is prefix + slot number |
| FACEFLEET_FLEET_STATE_KEY | fleet/state.json | same | state object in the output bucket |
| FACEFLEET_DECISION_HISTORY | 50 | 50 | recent decisions published with the state |
| FACEFLEET_IDLE_PROBE | true | true | on a partial scale-in, ask the workers (``inspect |
|   |   |   | active``) which hold no task and stop those first |
| FACEFLEET_IDLE_PROBE_TIMEOUT | 0.3 | 1 | seconds to wait for the workers' answers |
| FACEFLEET_RUNNER_POLL_SECONDS | 0.2 | - | embedded runner's EC2 poll period |
| FACEFLEET_WORKER_COMMAND | celery worker (below) | - | command of one instance's worker |
| FACEFLEET_RUNNER_STOP_TIMEOUT | 60 | - | seconds a warm shutdown may take before SIGKILL |
| FACEFLEET_RUNNER_FORK | true | - | fork workers from a process with the model preloaded |
| FACEFLEET_RUNNER_DRAIN_SECONDS | SQS wait + 1 | - | between telling a leaving worker to |
|   |   |   | stop consuming and its SIGTERM (an open long poll returns; 0: no drain) |

The worker command is split like a shell line and may use ``{name}`` (the instance's
Name tag) and ``{queue}``; its default is
``celery -A tasks worker -P solo -c 1 --prefetch-multiplier 1 --without-mingle
--without-gossip -l INFO -n {name}@%h -Q {queue}``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.env import ConfigError, get_bool, get_float, get_int, get_str

ROLE_TAG = "facefleet:role"
SLOT_TAG = "facefleet:slot"
ORIGIN_TAG = "facefleet:origin"
# Solo pool on the preloaded model; no mingle/gossip: they wait for other workers'
# replies at start (about a second), which the first request of a burst would pay.
DEFAULT_WORKER_COMMAND = (
    "celery -A tasks worker -P solo -c 1 --prefetch-multiplier 1 --without-mingle "
    "--without-gossip -l INFO -n {name}@%h -Q {queue}"
)

# Per-profile defaults: (embedded, aws). Kept in one place, like HPA's defaults.go.
_PROFILE_DEFAULTS: dict[str, tuple[float, float]] = {
    "tick_s": (0.5, 5.0),
    "backlog_per_instance": (1.0, 3.0),
    "idle_grace_s": (0.5, 30.0),
    "scale_in_window_s": (2.0, 60.0),
    "min_run_s": (0.0, 60.0),
    "boot_timeout_s": (30.0, 600.0),
    "start_timeout_s": (15.0, 300.0),
    "idle_probe_timeout_s": (0.3, 1.0),
}


@dataclass(frozen=True)
class AutoscalerSettings:
    """Typed, validated autoscaler configuration (see the module docstring for units)."""

    embedded: bool = True
    max_instances: int = 15
    min_instances: int = 0
    tick_s: float = 0.5
    backlog_per_instance: float = 1.0
    count_delayed: bool = False
    idle_grace_s: float = 0.5
    scale_in_window_s: float = 2.0
    min_run_s: float = 0.0
    boot_timeout_s: float = 30.0
    start_timeout_s: float = 15.0
    warm_pool_size: int = 15
    launch_template: str | None = None
    ami: str | None = None
    instance_type: str = "t3.small"
    user_data: str | None = None
    subnet_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    instance_profile: str | None = None
    key_name: str | None = None
    role: str = "app-tier"
    name_prefix: str = "app-tier-instance-"
    state_key: str = "fleet/state.json"
    decision_history: int = 50
    idle_probe: bool = True
    idle_probe_timeout_s: float = 0.3
    runner_poll_s: float = 0.2
    worker_command: str = DEFAULT_WORKER_COMMAND
    runner_stop_timeout_s: float = 60.0
    runner_fork: bool = True
    runner_drain_s: float | None = None

    def instance_name(self, slot: int) -> str:
        """The ``Name`` tag of the instance in ``slot`` (1-based)."""
        return f"{self.name_prefix}{slot}"

    def worker_argv(self, name: str, queue: str) -> list[str]:
        """The worker command for instance ``name`` as an argv list."""
        return [part.format(name=name, queue=queue) for part in shlex.split(self.worker_command)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AutoscalerSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        embedded = get_str(env, "FACEFLEET_AWS_ENDPOINT", "embedded").lower() not in {
            "aws", "none"}
        pick = 0 if embedded else 1

        def seconds(name: str, key: str) -> float:
            return get_float(env, name, _PROFILE_DEFAULTS[key][pick], minimum=0.0,
                             maximum=86400.0)

        max_instances = get_int(env, "FACEFLEET_MAX_INSTANCES", 15, minimum=1, maximum=1000)
        min_instances = get_int(env, "FACEFLEET_MIN_INSTANCES", 0, minimum=0, maximum=1000)
        if min_instances > max_instances:
            raise ConfigError(
                f"FACEFLEET_MIN_INSTANCES={min_instances} is above "
                f"FACEFLEET_MAX_INSTANCES={max_instances}")
        tick_s = get_float(env, "FACEFLEET_TICK_SECONDS", _PROFILE_DEFAULTS["tick_s"][pick],
                           minimum=0.05, maximum=3600.0)
        user_data = get_str(env, "FACEFLEET_USER_DATA", "")
        if user_data:
            path = Path(user_data).expanduser()
            try:
                user_data = path.read_text()
            except OSError as err:
                raise ConfigError(f"FACEFLEET_USER_DATA={user_data!r}: cannot read ({err})"
                                  ) from None
        role = get_str(env, "FACEFLEET_ROLE", cls.role)
        if len(role) > 200:
            raise ConfigError("FACEFLEET_ROLE is longer than 200 characters")
        command = get_str(env, "FACEFLEET_WORKER_COMMAND", DEFAULT_WORKER_COMMAND)
        try:
            argv = shlex.split(command)
            [part.format(name="x", queue="q") for part in argv]
        except (ValueError, KeyError, IndexError) as err:
            raise ConfigError(
                f"FACEFLEET_WORKER_COMMAND={command!r} is not a valid command line "
                f"(only {{name}} and {{queue}} may be substituted): {err}") from None
        if not argv:
            raise ConfigError("FACEFLEET_WORKER_COMMAND is empty")
        groups = tuple(g.strip() for g in get_str(env, "FACEFLEET_SECURITY_GROUPS", ""
                                                   ).split(",") if g.strip())
        # unset (-1): the SQS long-poll wait + 1 s, known to the runner (config.serving)
        drain_s = get_float(env, "FACEFLEET_RUNNER_DRAIN_SECONDS", -1.0, minimum=-1.0,
                            maximum=3600.0)
        settings = cls(
            embedded=embedded,
            max_instances=max_instances,
            min_instances=min_instances,
            tick_s=tick_s,
            backlog_per_instance=get_float(env, "FACEFLEET_BACKLOG_PER_INSTANCE",
                                           _PROFILE_DEFAULTS["backlog_per_instance"][pick],
                                           minimum=0.01, maximum=1e6),
            count_delayed=get_bool(env, "FACEFLEET_COUNT_DELAYED", False),
            idle_grace_s=seconds("FACEFLEET_IDLE_GRACE_SECONDS", "idle_grace_s"),
            scale_in_window_s=seconds("FACEFLEET_SCALE_IN_WINDOW_SECONDS", "scale_in_window_s"),
            min_run_s=seconds("FACEFLEET_MIN_RUN_SECONDS", "min_run_s"),
            boot_timeout_s=seconds("FACEFLEET_BOOT_TIMEOUT_SECONDS", "boot_timeout_s"),
            start_timeout_s=seconds("FACEFLEET_START_TIMEOUT_SECONDS", "start_timeout_s"),
            warm_pool_size=get_int(env, "FACEFLEET_WARM_POOL", max_instances, minimum=0,
                                   maximum=max_instances),
            launch_template=get_str(env, "FACEFLEET_LAUNCH_TEMPLATE", "") or None,
            ami=get_str(env, "FACEFLEET_AMI", "") or None,
            instance_type=get_str(env, "FACEFLEET_INSTANCE_TYPE", cls.instance_type),
            user_data=user_data or None,
            subnet_id=get_str(env, "FACEFLEET_SUBNET", "") or None,
            security_group_ids=groups,
            instance_profile=get_str(env, "FACEFLEET_INSTANCE_PROFILE", "") or None,
            key_name=get_str(env, "FACEFLEET_KEY_NAME", "") or None,
            role=role,
            name_prefix=get_str(env, "FACEFLEET_NAME_PREFIX", cls.name_prefix),
            state_key=get_str(env, "FACEFLEET_FLEET_STATE_KEY", cls.state_key).lstrip("/"),
            decision_history=get_int(env, "FACEFLEET_DECISION_HISTORY", 50, minimum=1,
                                     maximum=10000),
            idle_probe=get_bool(env, "FACEFLEET_IDLE_PROBE", True),
            idle_probe_timeout_s=get_float(env, "FACEFLEET_IDLE_PROBE_TIMEOUT",
                                           _PROFILE_DEFAULTS["idle_probe_timeout_s"][pick],
                                           minimum=0.01, maximum=60.0),
            runner_poll_s=get_float(env, "FACEFLEET_RUNNER_POLL_SECONDS", 0.2, minimum=0.05,
                                    maximum=60.0),
            worker_command=command,
            runner_stop_timeout_s=get_float(env, "FACEFLEET_RUNNER_STOP_TIMEOUT", 60.0,
                                            minimum=0.1, maximum=86400.0),
            runner_fork=get_bool(env, "FACEFLEET_RUNNER_FORK", True),
            runner_drain_s=drain_s if drain_s >= 0 else None,
        )
        if not settings.embedded and not (settings.ami or settings.launch_template):
            raise ConfigError(
                "on AWS set FACEFLEET_LAUNCH_TEMPLATE (name or lt- id) or FACEFLEET_AMI "
                "so the autoscaler knows what to launch")
        return settings
