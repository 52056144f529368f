"""Settings of the serving core (Celery, SQS and the completion signal), from the environment.

| variable | default | meaning |
| --- | --- | --- |
| FACEFLEET_BROKER_TRANSPORT | tasks.transport:Transport | kombu transport (``module:Class``) |
| FACEFLEET_TASK_TIME_LIMIT | 60 | hard limit (s) on one task; the process running it is killed |
| FACEFLEET_VISIBILITY_TIMEOUT | 120 | SQS visibility timeout (s); must exceed the time limit |
| FACEFLEET_SQS_WAIT_TIME | 10 | SQS long-poll wait (s, 0..20) for workers and reply queues |
| FACEFLEET_SQS_POLLING_INTERVAL | 0 | pause (s) after an empty long poll |
| FACEFLEET_REDELIVERY_DELAY | 1 | seconds before a task whose worker died or timed out is retried |
| FACEFLEET_WORKER_CONCURRENCY | 1 | pool processes per worker (each holds its own model) |
| FACEFLEET_WORKER_POOL | prefork | Celery pool; prefork survives a task that kills its process |
| FACEFLEET_COMPLETION_SIGNAL | true | workers notify a per-client SQS reply queue |
| FACEFLEET_RESULT_POLL_INTERVAL | 0.5 | seconds between S3 result polls when there is no signal |
| FACEFLEET_SIGNAL_FALLBACK_POLL | 5 | S3 poll period (s) while awaiting a signal |
| FACEFLEET_REPLY_QUEUE_PREFIX | facefleet-reply- | name prefix of reply queues |
| FACEFLEET_REPLY_QUEUE_TTL | 600 | seconds without a heartbeat after which a reply queue is stale |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, get_bool, get_float, get_int, get_str


@dataclass(frozen=True)
class ServingSettings:
    """Typed, validated serving knobs (see the module docstring)."""

    broker_transport: str = "tasks.transport:Transport"
    task_time_limit: float = 60.0
    visibility_timeout: int = 120
    wait_time_seconds: int = 10
    polling_interval: float = 0.0
    redelivery_delay: int = 1
    worker_concurrency: int = 1
    worker_pool: str = "prefork"
    completion_signal: bool = True
    result_poll_interval: float = 0.5
    signal_fallback_poll: float = 5.0
    reply_queue_prefix: str = "facefleet-reply-"
    reply_queue_ttl: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        serving = cls(
            broker_transport=get_str(env, "FACEFLEET_BROKER_TRANSPORT", cls.broker_transport),
            task_time_limit=get_float(env, "FACEFLEET_TASK_TIME_LIMIT", cls.task_time_limit,
                                      minimum=0.1, maximum=3600),
            visibility_timeout=get_int(env, "FACEFLEET_VISIBILITY_TIMEOUT",
                                       cls.visibility_timeout, minimum=1, maximum=43200),
            wait_time_seconds=get_int(env, "FACEFLEET_SQS_WAIT_TIME", cls.wait_time_seconds,
                                      minimum=0, maximum=20),
            polling_interval=get_float(env, "FACEFLEET_SQS_POLLING_INTERVAL",
                                       cls.polling_interval, minimum=0, maximum=60),
            redelivery_delay=get_int(env, "FACEFLEET_REDELIVERY_DELAY", cls.redelivery_delay,
                                     minimum=0, maximum=900),
            worker_concurrency=get_int(env, "FACEFLEET_WORKER_CONCURRENCY",
                                       cls.worker_concurrency, minimum=1, maximum=64),
            worker_pool=get_str(env, "FACEFLEET_WORKER_POOL", cls.worker_pool),
            completion_signal=get_bool(env, "FACEFLEET_COMPLETION_SIGNAL",
                                       cls.completion_signal),
            result_poll_interval=get_float(env, "FACEFLEET_RESULT_POLL_INTERVAL",
                                           cls.result_poll_interval, minimum=0.01, maximum=60),
            signal_fallback_poll=get_float(env, "FACEFLEET_SIGNAL_FALLBACK_POLL",
                                           cls.signal_fallback_poll, minimum=0.1, maximum=600),
            reply_queue_prefix=get_str(env, "FACEFLEET_REPLY_QUEUE_PREFIX",
                                       cls.reply_queue_prefix),
            reply_queue_ttl=get_float(env, "FACEFLEET_REPLY_QUEUE_TTL", cls.reply_queue_ttl,
                                      minimum=60, maximum=86400),
        )
        if serving.visibility_timeout <= serving.task_time_limit:
            raise ConfigError(
                f"FACEFLEET_VISIBILITY_TIMEOUT={serving.visibility_timeout} must exceed "
                f"FACEFLEET_TASK_TIME_LIMIT={serving.task_time_limit}, or a running task's "
                "message would be delivered to a second worker"
            )
        if serving.worker_pool not in {"prefork", "solo", "threads"}:
            raise ConfigError(
                f"FACEFLEET_WORKER_POOL={serving.worker_pool!r} must be prefork, solo or threads"
            )
        return serving
