"""Settings of Celery monitoring over SQS+SNS (inspect, control, events, Flower).

Read by the processes that use :mod:`tasks.transport`; merged into the Celery
configuration with :meth:`MonitoringSettings.celery_settings`.

| variable | default | meaning |
| --- | --- | --- |
| FACEFLEET_MONITORING | true | remote control + events over SNS (false: plain SQS) |
| FACEFLEET_MONITOR_QUEUE_PREFIX | ffmon- | name prefix of listener and reply queues |
| FACEFLEET_EVENT_FLUSH_INTERVAL | 0.5 | max wait (s) of an event for a PublishBatch (0: none) |
| FACEFLEET_LISTENER_EXPIRES | 600 | age (s) of last-seen after which a monitoring queue is swept |
| FACEFLEET_LISTENER_REFRESH | 120 | seconds between last-seen refreshes by the owning process |
| FACEFLEET_MONITOR_SWEEP_INTERVAL | 600 | seconds between sweeps of expired queues (per owner) |
| FACEFLEET_LISTENER_RETENTION | 300 | SQS retention (s, ≥ 60) of unread broadcasts |
| FACEFLEET_TASK_EVENTS | true | workers send task events (dashboard, Flower's task pages) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.env import ConfigError, get_bool, get_float, get_int, get_str

#: The transport class, for Celery's ``broker_transport`` setting.
TRANSPORT = "tasks.transport:Transport"
#: Celery's event exchange; broadcast through SNS by the transport.
EVENT_EXCHANGE = "celeryev"


@dataclass(frozen=True)
class MonitoringSettings:
    """Typed, validated monitoring knobs (see the module docstring)."""

    enabled: bool = True
    queue_prefix: str = "ffmon-"
    event_flush_interval: float = 0.5
    listener_expires: float = 600.0
    listener_refresh: float = 120.0
    sweep_interval: float = 600.0
    listener_retention: int = 300
    task_events: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitoringSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        prefix = get_str(env, "FACEFLEET_MONITOR_QUEUE_PREFIX", cls.queue_prefix)
        if not prefix or len(prefix) > 40 or not all(c.isalnum() or c in "-_" for c in prefix):
            raise ConfigError(
                f"FACEFLEET_MONITOR_QUEUE_PREFIX={prefix!r} must be 1-40 letters, digits, "
                "'-' or '_'"
            )
        settings = cls(
            enabled=get_bool(env, "FACEFLEET_MONITORING", cls.enabled),
            queue_prefix=prefix,
            event_flush_interval=get_float(env, "FACEFLEET_EVENT_FLUSH_INTERVAL",
                                           cls.event_flush_interval, minimum=0, maximum=10),
            listener_expires=get_float(env, "FACEFLEET_LISTENER_EXPIRES", cls.listener_expires,
                                       minimum=30, maximum=7 * 86400),
            listener_refresh=get_float(env, "FACEFLEET_LISTENER_REFRESH", cls.listener_refresh,
                                       minimum=1, maximum=86400),
            sweep_interval=get_float(env, "FACEFLEET_MONITOR_SWEEP_INTERVAL", cls.sweep_interval,
                                     minimum=10, maximum=7 * 86400),
            listener_retention=get_int(env, "FACEFLEET_LISTENER_RETENTION",
                                       cls.listener_retention, minimum=60, maximum=1209600),
            task_events=get_bool(env, "FACEFLEET_TASK_EVENTS", cls.task_events),
        )
        if settings.listener_refresh * 2 > settings.listener_expires:
            raise ConfigError(
                "FACEFLEET_LISTENER_REFRESH must be at most half of FACEFLEET_LISTENER_EXPIRES "
                "(a live listener must refresh twice before it could be swept)"
            )
        return settings

    def transport_options(self) -> dict[str, Any]:
        """Keys to merge into ``broker_transport_options`` (read by tasks.transport)."""
        return {
            "supports_fanout": self.enabled,
            "fanout_exchanges": [EVENT_EXCHANGE],
            "monitor_queue_prefix": self.queue_prefix,
            "event_flush_interval": self.event_flush_interval,
            "listener_expires": self.listener_expires,
            "listener_refresh": self.listener_refresh,
            "monitor_sweep_interval": self.sweep_interval,
            "listener_retention": self.listener_retention,
        }

    def celery_settings(self) -> dict[str, Any]:
        """Celery settings that turn monitoring on (or leave it off when disabled)."""
        if not self.enabled:
            return {"worker_enable_remote_control": False, "worker_send_task_events": False}
        return {
            "broker_transport": TRANSPORT,
            "worker_enable_remote_control": True,
            "worker_send_task_events": self.task_events,
            "event_exchange": EVENT_EXCHANGE,
            # A listener queue is ours to delete on close and swept when stale; these
            # AMQP-only arguments (x-expires, x-message-ttl) mean nothing on SQS.
            "event_queue_expires": self.listener_expires,
            "control_queue_expires": self.listener_expires,
        }


def apply(conf: dict[str, Any], settings: MonitoringSettings | None = None) -> dict[str, Any]:
    """``conf`` (a Celery config dict) with monitoring merged in; ``conf`` is not changed."""
    settings = settings or MonitoringSettings.from_env()
    merged = dict(conf, **settings.celery_settings())
    options = dict(conf.get("broker_transport_options") or {})
    options.update(settings.transport_options())
    merged["broker_transport_options"] = options
    return merged
