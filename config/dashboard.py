"""Settings of the web tier's live dashboard (``/dashboard``, ``/api/v1/dashboard``).

The listener starts lazily, once per web process, on the first dashboard request; an
open listener costs about one SQS ReceiveMessage per 5 s while idle plus one per event
batch (the per-worker event cost: docs/monitoring.md, "Cost per worker per hour").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, load, setting


@dataclass(frozen=True)
class DashboardSettings:
    """The live dashboard's event listener and statistics."""

    events: bool = setting(
        "FACEFLEET_DASHBOARD_EVENTS", True,
        "consume Celery events in the web process (false: the page shows queue and fleet "
        "only, and no SQS listener queue is made)")
    window_s: float = setting("FACEFLEET_DASHBOARD_WINDOW", 60.0,
                              "seconds of finished tasks behind the latency percentiles",
                              minimum=1, maximum=86400)
    rate_window_s: float = setting("FACEFLEET_DASHBOARD_RATE_WINDOW", 10.0,
                                   "seconds averaged for tasks per second",
                                   minimum=1, maximum=3600)
    history_s: float = setting("FACEFLEET_DASHBOARD_HISTORY", 120.0,
                               "seconds of per-second throughput kept for the chart",
                               minimum=10, maximum=3600)
    idle_stop_s: float = setting(
        "FACEFLEET_DASHBOARD_IDLE_STOP", 300.0,
        "stop listening after this long without a dashboard request or `/metrics` scrape "
        "(0: never); the next one starts it again", minimum=0, maximum=7 * 86400)
    poll_s: float = setting("FACEFLEET_DASHBOARD_POLL", 1.0,
                            "seconds between the page's refreshes", minimum=0.2, maximum=60)
    forget_after_s: float = setting("FACEFLEET_DASHBOARD_FORGET_AFTER", 600.0,
                                    "seconds an offline worker stays listed",
                                    minimum=10, maximum=7 * 86400)

    def check(self) -> None:
        """What spans several settings."""
        if 0 < self.idle_stop_s < 2 * self.poll_s:
            raise ConfigError(
                "FACEFLEET_DASHBOARD_IDLE_STOP must be 0 (never) or at least twice "
                "FACEFLEET_DASHBOARD_POLL, or an open page would stop its own listener")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)
