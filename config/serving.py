"""Settings of the serving core: Celery on SQS, and the completion signal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, Invalid, dump, load, setting

POOLS = ("prefork", "solo", "threads")


def parse_pool(raw: str) -> str:
    """A Celery pool this service runs with."""
    if raw not in POOLS:
        raise Invalid("must be prefork, solo or threads")
    return raw


@dataclass(frozen=True)
class ServingSettings:
    """Serving knobs: Celery, SQS polling and the completion signal."""

    broker_transport: str = setting(
        "FACEFLEET_BROKER_TRANSPORT", "tasks.transport:Transport",
        "kombu transport (`module:Class`); the default adds SNS broadcast to kombu's SQS")
    task_time_limit: float = setting(
        "FACEFLEET_TASK_TIME_LIMIT", 60.0,
        "hard limit (s) on one task; the process running it is killed",
        minimum=0.1, maximum=3600)
    visibility_timeout: int = setting(
        "FACEFLEET_VISIBILITY_TIMEOUT", 30,
        "SQS visibility timeout (s): how soon a dead worker's messages come back; workers "
        "extend what they hold, so it may be shorter than the task time limit",
        minimum=1, maximum=43200)
    visibility_extend_every: float = setting(
        "FACEFLEET_VISIBILITY_EXTEND_EVERY", 10.0,
        "seconds between a worker's extensions of the messages it holds (running and "
        "prefetched); at most half the visibility timeout; 0 turns extension off",
        minimum=0, maximum=21600)
    wait_time_seconds: int = setting(
        "FACEFLEET_SQS_WAIT_TIME", 10,
        "SQS long-poll wait (s) of workers and reply queues", minimum=0, maximum=20)
    polling_interval: float = setting(
        "FACEFLEET_SQS_POLLING_INTERVAL", 0.0,
        "pause (s) after an empty long poll (the long poll already waited)",
        minimum=0, maximum=60)
    redelivery_delay: int = setting(
        "FACEFLEET_REDELIVERY_DELAY", 1,
        "seconds before a task whose worker died or timed out is tried again",
        minimum=0, maximum=900)
    batch_max: int = setting(
        "FACEFLEET_BATCH_MAX", 1,
        "most images one worker process recognises together (dynamic batching, "
        "tasks/batching.py); above 1 the pool defaults to threads and the concurrency to "
        "twice this, so the next batch fills while one runs", minimum=1,
        maximum=256)
    batch_wait: float = setting(
        "FACEFLEET_BATCH_WAIT", 0.05,
        "most seconds a batch waits for the images of tasks this process already runs "
        "(never for tasks not yet received: a lone request runs at once)", minimum=0,
        maximum=5)
    worker_concurrency: int = setting(
        "FACEFLEET_WORKER_CONCURRENCY", 1,
        "pool processes (or threads) per worker; each process holds its own model",
        minimum=1, maximum=512,
        derive=lambda seen: 2 * seen["batch_max"] if seen["batch_max"] > 1 else 1,
        default_doc="1 (batching: 2 x FACEFLEET_BATCH_MAX)")
    worker_pool: str = setting(
        "FACEFLEET_WORKER_POOL", "prefork",
        "Celery pool: prefork survives a task that kills its process; threads overlaps "
        "one task's S3/SQS round trips with another's recognition", parse=parse_pool,
        derive=lambda seen: "threads" if seen["batch_max"] > 1 else "prefork",
        default_doc="`prefork` (batching: `threads`)")
    completion_signal: bool = setting(
        "FACEFLEET_COMPLETION_SIGNAL", True,
        "workers notify the client's SQS reply queue (false: clients poll S3)")
    result_poll_interval: float = setting(
        "FACEFLEET_RESULT_POLL_INTERVAL", 0.5,
        "seconds between S3 result polls when there is no signal", minimum=0.01, maximum=60)
    signal_fallback_poll: float = setting(
        "FACEFLEET_SIGNAL_FALLBACK_POLL", 5.0,
        "seconds before a waiter first polls S3 in case its signal was lost; each next "
        "interval doubles, up to 4 times this",
        minimum=0.1, maximum=600)
    reply_queue_prefix: str = setting("FACEFLEET_REPLY_QUEUE_PREFIX", "facefleet-reply-",
                                      "name prefix of reply queues")
    reply_queue_ttl: float = setting(
        "FACEFLEET_REPLY_QUEUE_TTL", 600.0,
        "seconds without a heartbeat after which a reply queue is removed as stale",
        minimum=60, maximum=86400)

    def check(self) -> None:
        """What spans several settings."""
        if self.batch_max > 1 and (self.worker_pool != "threads"
                                   or self.worker_concurrency < self.batch_max):
            raise ConfigError(
                f"FACEFLEET_BATCH_MAX={self.batch_max} needs FACEFLEET_WORKER_POOL=threads "
                f"and FACEFLEET_WORKER_CONCURRENCY of at least {self.batch_max} (a batch is "
                f"made of the tasks one process runs at once; "
                f"{2 * self.batch_max} keeps the next batch filling while one runs), not "
                f"{self.worker_pool} with {self.worker_concurrency}")
        if self.visibility_extend_every > self.visibility_timeout / 2:
            raise ConfigError(
                f"FACEFLEET_VISIBILITY_EXTEND_EVERY={self.visibility_extend_every:g} must be "
                f"at most half of FACEFLEET_VISIBILITY_TIMEOUT={self.visibility_timeout}, so "
                "a failed extension is retried before a held message reappears")
        if not self.visibility_extend_every and \
                self.visibility_timeout <= self.task_time_limit:
            raise ConfigError(
                f"FACEFLEET_VISIBILITY_TIMEOUT={self.visibility_timeout} must exceed "
                f"FACEFLEET_TASK_TIME_LIMIT={self.task_time_limit:g} when extension is off "
                "(FACEFLEET_VISIBILITY_EXTEND_EVERY=0), or a running task's message would "
                "be delivered to a second worker")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a child process."""
        return dump(self)
