"""Settings of the web tier's live dashboard (``/dashboard``, ``/api/v1/dashboard``).

| variable | default | meaning |
| --- | --- | --- |
| FACEFLEET_DASHBOARD_EVENTS | true | consume Celery events in the web process (false: the |
|   |   | page shows queue and fleet only, no SQS listener queue is made) |
| FACEFLEET_DASHBOARD_WINDOW | 60 | seconds of finished tasks behind the latency percentiles |
| FACEFLEET_DASHBOARD_RATE_WINDOW | 10 | seconds averaged for "tasks per second" |
| FACEFLEET_DASHBOARD_HISTORY | 120 | seconds of per-second throughput kept for the chart |
| FACEFLEET_DASHBOARD_IDLE_STOP | 300 | stop listening after this long without a dashboard |
|   |   | request (0: never); the next request starts it again |
| FACEFLEET_DASHBOARD_POLL | 1.0 | seconds between the page's refreshes |
| FACEFLEET_DASHBOARD_FORGET_AFTER | 600 | seconds an offline worker stays listed |

The listener starts lazily, once per web process, on the first dashboard request; an
open listener costs about one SQS ReceiveMessage per 5 s while idle plus one per event
batch (see the monitoring README for the per-worker event cost).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, get_bool, get_float


@dataclass(frozen=True)
class DashboardSettings:
    """Typed, validated dashboard knobs (see the module docstring)."""

    events: bool = True
    window_s: float = 60.0
    rate_window_s: float = 10.0
    history_s: float = 120.0
    idle_stop_s: float = 300.0
    poll_s: float = 1.0
    forget_after_s: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        settings = cls(
            events=get_bool(env, "FACEFLEET_DASHBOARD_EVENTS", cls.events),
            window_s=get_float(env, "FACEFLEET_DASHBOARD_WINDOW", cls.window_s,
                               minimum=1, maximum=86400),
            rate_window_s=get_float(env, "FACEFLEET_DASHBOARD_RATE_WINDOW", cls.rate_window_s,
                                    minimum=1, maximum=3600),
            history_s=get_float(env, "FACEFLEET_DASHBOARD_HISTORY", cls.history_s,
                                minimum=10, maximum=3600),
            idle_stop_s=get_float(env, "FACEFLEET_DASHBOARD_IDLE_STOP", cls.idle_stop_s,
                                  minimum=0, maximum=7 * 86400),
            poll_s=get_float(env, "FACEFLEET_DASHBOARD_POLL", cls.poll_s,
                             minimum=0.2, maximum=60),
            forget_after_s=get_float(env, "FACEFLEET_DASHBOARD_FORGET_AFTER",
                                     cls.forget_after_s, minimum=10, maximum=7 * 86400),
        )
        if 0 < settings.idle_stop_s < 2 * settings.poll_s:
            raise ConfigError(
                "FACEFLEET_DASHBOARD_IDLE_STOP must be 0 (never) or at least twice "
                "FACEFLEET_DASHBOARD_POLL, or an open page would stop its own listener"
            )
        return settings
