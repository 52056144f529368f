"""Settings of the embedded stack (``python -m deploy.stack``), from the environment.

Addresses come from the parts' own settings, so there is one variable per address:
the embedded AWS endpoint from ``FACEFLEET_AWS_ENDPOINT`` (:mod:`config.settings`; the
stack starts moto's server on that loopback port) and the web tier from
``FACEFLEET_WEB_BIND`` (:mod:`config.web`).

| variable | default | meaning |
| --- | --- | --- |
| FACEFLEET_AUTOSCALE | true | start the autoscaler (controller + embedded runner, workers |
|   |   | per running instance, see :mod:`config.autoscaler`) instead of fixed workers |
| FACEFLEET_WORKERS | 2 | fixed Celery worker processes (only with FACEFLEET_AUTOSCALE=false) |
| FACEFLEET_STACK_DIR | .stack | state file and logs of a detached stack |
| FACEFLEET_STACK_START_TIMEOUT | 180 | seconds to wait for every part to be ready |
| FACEFLEET_WORKER_CPUS | (all) | CPUs for the workers (and the runner that forks them), |
|   |   | taskset syntax such as ``1`` or ``2-3`` |
| FACEFLEET_SERVICE_CPUS | (all) | CPUs for moto's server, the web tier and the controller |

Pinning exists for measurement: on one machine the embedded AWS and the web tier stand
in for services that run elsewhere on AWS, and pinning them off the workers' cores lets
``bench.e2e`` compare the workers with the in-process recognizer on the same cores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.env import get_bool, get_cpus, get_float, get_int, get_str


@dataclass(frozen=True)
class StackSettings:
    """Process counts and the state folder of the embedded stack."""

    # Two single-process workers: one can reload its model after a crash while the
    # other keeps serving; more only compete for this machine's two cores.
    workers: int = 2
    autoscale: bool = True
    state_dir: Path = Path(".stack")
    start_timeout: float = 180.0
    worker_cpus: frozenset[int] | None = None
    service_cpus: frozenset[int] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        available = frozenset(os.sched_getaffinity(0))
        return cls(
            workers=get_int(env, "FACEFLEET_WORKERS", cls.workers, minimum=0, maximum=64),
            autoscale=get_bool(env, "FACEFLEET_AUTOSCALE", cls.autoscale),
            state_dir=Path(get_str(env, "FACEFLEET_STACK_DIR", str(cls.state_dir))),
            start_timeout=get_float(env, "FACEFLEET_STACK_START_TIMEOUT", cls.start_timeout,
                                    minimum=1, maximum=3600),
            worker_cpus=get_cpus(env, "FACEFLEET_WORKER_CPUS", available),
            service_cpus=get_cpus(env, "FACEFLEET_SERVICE_CPUS", available),
        )
