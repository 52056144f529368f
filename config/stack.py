"""Settings of the embedded stack (``python -m deploy.stack``), from the environment.

Addresses come from the parts' own settings, so there is one variable per address:
the embedded AWS endpoint from ``FACEFLEET_AWS_ENDPOINT`` (:mod:`config.settings`; the
stack starts moto's server on that loopback port) and the web tier from
``FACEFLEET_WEB_BIND`` (:mod:`config.web`).

Pinning exists for measurement: on one machine the embedded AWS and the web tier stand
in for services that run elsewhere on AWS, and pinning them off the workers' cores lets
``bench.e2e`` compare the workers with the in-process recognizer on the same cores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.env import Invalid, load, setting


def parse_cpus(raw: str) -> frozenset[int]:
    """taskset's ``-c`` list (``1``, ``0,2``, ``0-3``) of CPUs this process may use, so a
    typo fails here rather than as an EINVAL from ``sched_setaffinity`` in a child."""
    cpus: set[int] = set()
    for part in raw.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            raise Invalid("is not a CPU list such as 1, 0,2 or 0-3") from None
        if low < 0 or high < low:
            raise Invalid(f"holds {part.strip()!r}, which is not a CPU range")
        cpus.update(range(low, high + 1))
    available = os.sched_getaffinity(0)
    missing = sorted(cpus - available)
    if missing:
        raise Invalid(f"names CPU(s) {missing} that this machine does not offer; "
                      f"available: {sorted(available)}")
    return frozenset(cpus)


@dataclass(frozen=True)
class StackSettings:
    """The embedded stack: its fleet, state folder and CPU pinning."""

    autoscale: bool = setting(
        "FACEFLEET_AUTOSCALE", True,
        "start the autoscaler (controller + embedded runner: a worker per running "
        "instance) instead of fixed workers")
    # Two single-process workers: one can reload its model after a crash while the
    # other keeps serving; more only compete for a small machine's cores.
    workers: int = setting("FACEFLEET_WORKERS", 2,
                           "fixed Celery worker processes (with FACEFLEET_AUTOSCALE=false)",
                           minimum=0, maximum=64)
    state_dir: Path = setting("FACEFLEET_STACK_DIR", Path(".stack"),
                              "state file and logs of the stack")
    start_timeout: float = setting("FACEFLEET_STACK_START_TIMEOUT", 180.0,
                                   "seconds to wait for every part to be ready",
                                   minimum=1, maximum=3600)
    worker_cpus: frozenset[int] | None = setting(
        "FACEFLEET_WORKER_CPUS", None,
        "CPUs of the workers (and the runner that forks them), taskset syntax: 1, 0,2, 2-3",
        parse=parse_cpus)
    service_cpus: frozenset[int] | None = setting(
        "FACEFLEET_SERVICE_CPUS", None,
        "CPUs of moto's server, the web tier and the controller", parse=parse_cpus)
    # On AWS an instance has its own cores; here the simulated instances share the
    # machine with what stands in for AWS (moto's server) and for the web tier's own
    # host. At equal priority 15 busy workers take 15/17 of the CPU and the web tier,
    # starved, answers even a refusal in seconds and lets the queue run dry mid-overload
    # (bench.overload). Below the services' priority, the workers still get every cycle
    # the services leave, as instances would.
    worker_nice: int = setting(
        "FACEFLEET_WORKER_NICE", 10,
        "niceness of the workers (and the runner that forks them) above the services': "
        "on one machine the simulated instances yield the CPU to the embedded AWS and the "
        "web tier, which stand in for machines of their own; 0: equal priority",
        minimum=0, maximum=19)
    fault_proxy: bool = setting(
        "FACEFLEET_FAULT_PROXY", False,
        "put the fault-injection proxy (deploy/faultproxy.py) on the endpoint's address "
        "in front of moto's server, which moves to a free port: every process then "
        "reaches AWS through it, and faults are switched at `<endpoint>/__faults__`")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)
