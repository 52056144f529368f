"""Settings of the web tier (Flask app and its gunicorn server).

Why one worker process with many threads: a request that waits for its result does no
work (it sleeps on S3/SQS), so threads are cheap, and one process keeps the Prometheus
counters and the waiting-request limit in one place. Raise the worker count only
behind a load balancer that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, Invalid, load, setting

# Threads that never wait on a result: /healthz, /metrics, the page, fleet reads.
RESERVED_THREADS = 16


def parse_bind(raw: str) -> str:
    """gunicorn's HOST:PORT or unix:PATH."""
    if ":" not in raw and not raw.startswith("unix:"):
        raise Invalid("must be HOST:PORT or unix:PATH")
    return raw


@dataclass(frozen=True)
class WebSettings:
    """The web tier: its gunicorn server and request limits."""

    bind: str = setting("FACEFLEET_WEB_BIND", "127.0.0.1:8000", "address gunicorn listens on",
                        parse=parse_bind)
    workers: int = setting("FACEFLEET_WEB_WORKERS", 1,
                           "gunicorn worker processes (metrics are per process)",
                           minimum=1, maximum=64)
    threads: int = setting("FACEFLEET_WEB_THREADS", 160,
                           "threads per worker: each request awaiting a result holds one",
                           minimum=4, maximum=4096)
    max_waiting: int = setting(
        "FACEFLEET_WEB_MAX_WAITING", 160 - RESERVED_THREADS,
        "requests allowed to await a result at once per process; beyond it 503 + Retry-After",
        minimum=1, derive=lambda seen: max(1, seen["threads"] - RESERVED_THREADS),
        default_doc=f"threads − {RESERVED_THREADS}")
    enrol_timeout: float = setting("FACEFLEET_WEB_ENROL_TIMEOUT", 120.0,
                                   "seconds an enrolment request waits for its worker",
                                   minimum=1.0)
    max_files: int = setting("FACEFLEET_WEB_MAX_FILES", 16,
                             "photos accepted in one enrolment request", minimum=1, maximum=256)
    fleet_stale_after: float = setting(
        "FACEFLEET_FLEET_STALE_AFTER", 30.0,
        "seconds after which the autoscaler's published state is marked stale", minimum=1.0)

    def check(self) -> None:
        """What spans several settings."""
        if self.max_waiting > self.threads:
            raise ConfigError(f"FACEFLEET_WEB_MAX_WAITING={self.max_waiting} is above the "
                              f"maximum {self.threads} (FACEFLEET_WEB_THREADS)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)
