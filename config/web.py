"""Settings of the web tier (Flask app and its gunicorn server).

Why one worker process with many threads: a request that waits for its result does no
work (it sleeps on S3/SQS), so threads are cheap, and one process keeps the Prometheus
counters and the waiting-request limit in one place. Raise the worker count only
behind a load balancer that needs it.
"""

from __future__ import annotations

import ipaddress
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


#: How /dashboard (and the JSON it polls) is guarded; see ``dashboard_guarded``.
DASHBOARD_GUARDS = ("auto", "key", "off")


def parse_guard(raw: str) -> str:
    """``auto``, ``key`` or ``off`` (any case)."""
    guard = raw.lower()
    if guard not in DASHBOARD_GUARDS:
        raise Invalid("must be auto, key or off")
    return guard


def is_loopback_bind(bind: str) -> bool:
    """True when gunicorn's ``bind`` can only be reached from this machine: a unix
    socket, ``localhost`` or a loopback address (127.0.0.0/8, ::1). An empty host,
    0.0.0.0, :: and any other name or address listen beyond it."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


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
    max_enrol_bytes: int = setting(
        "FACEFLEET_WEB_MAX_ENROL_BYTES", 32 * 1024 * 1024,
        "largest enrolment request body in bytes (all its photos); a larger one is refused "
        "(413) before it is read", minimum=1)
    fleet_stale_after: float = setting(
        "FACEFLEET_FLEET_STALE_AFTER", 30.0,
        "seconds after which the autoscaler's published state is marked stale", minimum=1.0)
    require_key_for_recognition: bool = setting(
        "FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION", False,
        "recognitions (`POST /`, `POST`/`GET /api/v1/recognitions`) need `X-API-Key` too, "
        "not only identity writes; needs `FACEFLEET_API_KEY`")
    dashboard_guard: str = setting(
        "FACEFLEET_DASHBOARD_GUARD", "auto",
        "`/dashboard` and `/api/v1/dashboard` need the API key (`X-API-Key`, or HTTP basic "
        "auth with it as the password): `auto` when `FACEFLEET_WEB_BIND` is beyond loopback, "
        "`key` always, `off` never (e.g. behind an authenticating proxy); with no "
        "`FACEFLEET_API_KEY` a guarded dashboard answers 403", parse=parse_guard)

    @property
    def dashboard_guarded(self) -> bool:
        """Whether the dashboard needs the API key (see ``FACEFLEET_DASHBOARD_GUARD``)."""
        if self.dashboard_guard == "auto":
            return not is_loopback_bind(self.bind)
        return self.dashboard_guard == "key"

    def check(self) -> None:
        """What spans several settings."""
        if self.max_waiting > self.threads:
            raise ConfigError(f"FACEFLEET_WEB_MAX_WAITING={self.max_waiting} is above the "
                              f"maximum {self.threads} (FACEFLEET_WEB_THREADS)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)
