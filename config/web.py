"""Settings of the web tier (Flask app and its gunicorn server).

| variable | default | meaning |
| --- | --- | --- |
| FACEFLEET_WEB_BIND | 127.0.0.1:8000 | address gunicorn listens on |
| FACEFLEET_WEB_WORKERS | 1 | gunicorn worker processes (metrics are per process) |
| FACEFLEET_WEB_THREADS | 160 | threads per worker: each waiting request holds one |
| FACEFLEET_WEB_MAX_WAITING | threads - 16 | requests allowed to wait for a result at once |
|   |   | per process; beyond it the web tier answers 503 + Retry-After |
| FACEFLEET_WEB_ENROL_TIMEOUT | 120 | seconds an enrolment request waits for the worker |
| FACEFLEET_WEB_MAX_FILES | 16 | images accepted in one enrolment request |
| FACEFLEET_FLEET_STATE_KEY | fleet/state.json | key in the output bucket where the |
|   |   | autoscaler publishes its state (the variable ``config.autoscaler`` reads too) |
| FACEFLEET_FLEET_STALE_AFTER | 30 | seconds after which published fleet state is marked stale |

Why one worker process with many threads: a request that waits for its result does no
work (it sleeps on S3/SQS), so threads are cheap, and one process keeps the Prometheus
counters and the waiting-request limit in one place. Raise the worker count only
behind a load balancer that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, get_float, get_int, get_str

# Threads that never wait on a result: /healthz, /metrics, the page, fleet reads.
RESERVED_THREADS = 16


@dataclass(frozen=True)
class WebSettings:
    """Typed configuration of the web tier (see the module docstring)."""

    bind: str = "127.0.0.1:8000"
    workers: int = 1
    threads: int = 160
    max_waiting: int = 160 - RESERVED_THREADS
    enrol_timeout: float = 120.0
    max_files: int = 16
    fleet_state_key: str = "fleet/state.json"
    fleet_stale_after: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        bind = get_str(env, "FACEFLEET_WEB_BIND", cls.bind)
        if ":" not in bind and not bind.startswith("unix:"):
            raise ConfigError(f"FACEFLEET_WEB_BIND={bind!r} must be HOST:PORT or unix:PATH")
        threads = get_int(env, "FACEFLEET_WEB_THREADS", cls.threads, minimum=4, maximum=4096)
        max_waiting = get_int(
            env, "FACEFLEET_WEB_MAX_WAITING", max(1, threads - RESERVED_THREADS), minimum=1,
            maximum=threads,
        )
        key = get_str(env, "FACEFLEET_FLEET_STATE_KEY", cls.fleet_state_key).lstrip("/")
        return cls(
            bind=bind,
            workers=get_int(env, "FACEFLEET_WEB_WORKERS", cls.workers, minimum=1, maximum=64),
            threads=threads,
            max_waiting=max_waiting,
            enrol_timeout=get_float(
                env, "FACEFLEET_WEB_ENROL_TIMEOUT", cls.enrol_timeout, minimum=1.0
            ),
            max_files=get_int(env, "FACEFLEET_WEB_MAX_FILES", cls.max_files, minimum=1,
                              maximum=256),
            fleet_state_key=key,
            fleet_stale_after=get_float(
                env, "FACEFLEET_FLEET_STALE_AFTER", cls.fleet_stale_after, minimum=1.0
            ),
        )
