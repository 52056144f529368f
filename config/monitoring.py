"""Settings of Celery monitoring over SQS+SNS (inspect, control, events, Flower).

Read by the processes that use :mod:`tasks.transport`; merged into the Celery
configuration by :func:`apply`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.env import ConfigError, Invalid, load, setting

#: The transport class, for Celery's ``broker_transport`` setting.
TRANSPORT = "tasks.transport:Transport"
#: Celery's event exchange; broadcast through SNS by the transport.
EVENT_EXCHANGE = "celeryev"


def parse_prefix(raw: str) -> str:
    """A queue-name prefix: 1-40 letters, digits, '-' or '_' (SQS's own alphabet)."""
    if len(raw) > 40 or not all(c.isalnum() or c in "-_" for c in raw):
        raise Invalid("must be 1-40 letters, digits, '-' or '_'")
    return raw


@dataclass(frozen=True)
class MonitoringSettings:
    """Monitoring over SQS+SNS: inspect, remote control, events, Flower."""

    enabled: bool = setting("FACEFLEET_MONITORING", True,
                            "remote control and events over SNS (false: plain SQS)")
    queue_prefix: str = setting("FACEFLEET_MONITOR_QUEUE_PREFIX", "ffmon-",
                                "name prefix of listener and reply queues", parse=parse_prefix)
    event_flush_interval: float = setting(
        "FACEFLEET_EVENT_FLUSH_INTERVAL", 0.5,
        "longest wait (s) of an event for an SNS PublishBatch (0: none)", minimum=0, maximum=10)
    listener_expires: float = setting(
        "FACEFLEET_LISTENER_EXPIRES", 600.0,
        "age (s) of a monitoring queue's last-seen tag after which it is swept",
        minimum=30, maximum=7 * 86400)
    listener_refresh: float = setting(
        "FACEFLEET_LISTENER_REFRESH", 120.0,
        "seconds between last-seen refreshes by the owning process", minimum=1, maximum=86400)
    sweep_interval: float = setting(
        "FACEFLEET_MONITOR_SWEEP_INTERVAL", 600.0,
        "seconds between sweeps of expired queues (per owner)", minimum=10, maximum=7 * 86400)
    listener_retention: int = setting(
        "FACEFLEET_LISTENER_RETENTION", 300,
        "SQS retention (s) of unread broadcasts", minimum=60, maximum=1209600)
    task_events: bool = setting(
        "FACEFLEET_TASK_EVENTS", True,
        "workers send task events (the dashboard and Flower's task pages need them)")

    def check(self) -> None:
        """What spans several settings."""
        if self.listener_refresh * 2 > self.listener_expires:
            raise ConfigError(
                "FACEFLEET_LISTENER_REFRESH must be at most half of FACEFLEET_LISTENER_EXPIRES "
                "(a live listener must refresh twice before it could be swept)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitoringSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)

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


def apply(conf: dict[str, Any], settings: MonitoringSettings) -> dict[str, Any]:
    """``conf`` (a Celery config dict) with monitoring merged in; ``conf`` is not changed."""
    merged = dict(conf, **settings.celery_settings())
    options = dict(conf.get("broker_transport_options") or {})
    options.update(settings.transport_options())
    merged["broker_transport_options"] = options
    return merged
