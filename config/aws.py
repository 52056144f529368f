"""How every facefleet process talks to AWS: one boto3 client factory, and one reading
of AWS's answers (error codes, queue depth).

Clients are built here and nowhere else, from :class:`config.settings.Settings` (the
endpoint: the embedded moto server or AWS itself) and a *purpose* that picks the
connection pool, timeouts and retries for how the client is used:

- ``default`` (provisioning, controller, runner, benchmarks): botocore's defaults
  (3 tries in standard mode);
- ``interactive`` (command line, gallery, the web tier's fleet reads): 3 tries with
  short timeouts, failing within seconds when the endpoint is down, since a person or
  a request thread waits;
- ``request`` (the web tier's task client): one pooled connection per waiting request
  thread, short timeouts, so a dead endpoint fails a request, never hangs it, and 4
  tries;
- ``worker`` (a worker's S3 and SQS calls): no client-side validation of parameters
  the task built itself, and S3 checksums only where S3 requires them; both cost CPU
  on every call of the hot path; 4 tries;
- ``heartbeat`` (a worker's visibility extension): 1 try, the next tick is the retry.

The request path's S3 GET/PUT in workers go through :mod:`tasks.objectstore` (minio),
with the same endpoint and credentials (:func:`endpoint_kwargs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from config.errors import FacefleetError
from config.settings import EMBEDDED_CREDENTIALS, Settings

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client
    from types_boto3_s3 import S3Client
    from types_boto3_sns import SNSClient
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeFilterType

Purpose = Literal["default", "interactive", "request", "worker", "heartbeat"]

# Retries are given as botocore's ``total_max_attempts``, the number of *tries* (the
# first one included). Its older ``max_attempts`` key counts *retries* (N means N + 1
# tries), which is how ``max_attempts: 2`` and ``3`` here once meant 3 and 4 tries
# while reading as 2 and 3; tests/config/test_aws.py counts the tries each purpose makes.
# Standard mode backs off rand(0, 1) x 50 ms x 2^i between tries (1 s x 2^i after a
# throttling answer), at most 20 s.


def _tries(total: int) -> Any:
    """botocore's ``retries`` for ``total`` tries in standard mode."""
    return {"total_max_attempts": total, "mode": "standard"}


#: Tries per call of each purpose (``default``: botocore's own default, 3 in standard
#: mode, unless AWS_MAX_ATTEMPTS says otherwise).
TRIES: dict[str, int] = {"interactive": 3, "request": 4, "worker": 4, "heartbeat": 1}

PURPOSES: dict[str, Config | None] = {
    "default": None,
    # A person or a request thread waits: 3 tries with a 3 s connect timeout fail an
    # endpoint that refuses connections at once and one that drops them in about 9 s.
    # Not fewer: workers read the gallery's stamp through this purpose on the hot path,
    # and 3 tries rode out 10 % SlowDown + 2 % InternalError in bench.faults.
    "interactive": Config(connect_timeout=3, read_timeout=15,
                          retries=_tries(TRIES["interactive"])),
    # The request path (web tier) and a worker's S3 and SQS calls: 4 tries, what
    # bench.faults measured 0 lost and 0 wrong with (throttling, 5xx, resets); a call
    # that still fails becomes a retryable 503 (web) or a redelivery (worker).
    "request": Config(max_pool_connections=256, connect_timeout=5, read_timeout=30,
                      retries=_tries(TRIES["request"])),
    "worker": Config(max_pool_connections=16, retries=_tries(TRIES["worker"]),
                     parameter_validation=False,
                     request_checksum_calculation="when_required",
                     response_checksum_validation="when_required"),
    # A worker's visibility extension (tasks/visibility.py): one quick try per tick,
    # because the next tick retries and a dead endpoint must not stall the thread.
    "heartbeat": Config(connect_timeout=2, read_timeout=5,
                        retries=_tries(TRIES["heartbeat"])),
}

#: S3 error codes meaning "no such object" (GetObject says NoSuchKey, HeadObject 404).
MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
NO_SUCH_BUCKET = "NoSuchBucket"
#: SQS error codes meaning "no such queue" (query and JSON protocols, moto).
MISSING_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                           "NonExistentQueue"})
#: S3 error codes of a conditional write that lost a race.
CONFLICT = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class EndpointKwargs(TypedDict, total=False):
    """Where a client connects and as whom (boto3.client's keyword arguments)."""

    region_name: str
    endpoint_url: str
    aws_access_key_id: str
    aws_secret_access_key: str


def endpoint_kwargs(settings: Settings) -> EndpointKwargs:
    """Region, and on the embedded endpoint its URL and fixed keys (moto takes any; on
    AWS the credential chain applies: environment, profile, instance role)."""
    if settings.aws_endpoint is None:
        return EndpointKwargs(region_name=settings.region)
    return EndpointKwargs(
        region_name=settings.region, endpoint_url=settings.aws_endpoint,
        aws_access_key_id=settings.embedded_access_key,
        aws_secret_access_key=EMBEDDED_CREDENTIALS["aws_secret_access_key"])


def s3_client(settings: Settings, purpose: Purpose = "default") -> S3Client:
    """An S3 client on the configured endpoint, for ``purpose``."""
    return boto3.client("s3", config=PURPOSES[purpose], **endpoint_kwargs(settings))


def sqs_client(settings: Settings, purpose: Purpose = "default") -> SQSClient:
    """An SQS client on the configured endpoint, for ``purpose``."""
    return boto3.client("sqs", config=PURPOSES[purpose], **endpoint_kwargs(settings))


def sns_client(settings: Settings, purpose: Purpose = "default") -> SNSClient:
    """An SNS client on the configured endpoint, for ``purpose``."""
    return boto3.client("sns", config=PURPOSES[purpose], **endpoint_kwargs(settings))


def ec2_client(settings: Settings, purpose: Purpose = "default") -> EC2Client:
    """An EC2 client on the configured endpoint, for ``purpose``."""
    return boto3.client("ec2", config=PURPOSES[purpose], **endpoint_kwargs(settings))


def client(settings: Settings, service: str, purpose: Purpose = "default") -> Any:
    """A client of any other ``service`` (IAM in tests), on the same terms."""
    session = boto3.session.Session()
    return session.client(service, config=PURPOSES[purpose],  # type: ignore[call-overload]
                          **endpoint_kwargs(settings))


# ---- reading AWS's answers ---------------------------------------------------------

#: What a boto3 call may raise instead of answering: AWS's refusals, botocore's own
#: errors (connection, timeout, credentials), an endpoint's unparseable answer.
CALL_ERRORS = (ClientError, BotoCoreError, ResponseParserError, OSError)


def share_botocore_loader() -> None:
    """Make every botocore session of this process (and its forked children) share one
    data loader, as the clients of one session already do.

    Each new session otherwise re-parses endpoints.json and the service models, 0.17 s
    of CPU each, against 0.014 s with the loader shared. Sessions are made per thread on
    purpose (a boto3 session or resource must not be shared across threads), and
    Celery builds its S3 result backend -- a session and a resource -- once per thread
    that sends a task: under overload the web tier's 160 request threads spent their
    process's CPU parsing JSON instead of answering (bench.overload). Workers paid the
    same twice per start (kombu's SQS channel and the backend), 15 at once. The loader
    holds read-only data and caches; two threads that miss at once both load, and the
    result is the same.
    """
    if getattr(botocore.session.create_loader, "facefleet_shared", False):
        return
    loaders: dict[str | None, botocore.loaders.Loader] = {}
    original = botocore.loaders.create_loader

    def shared(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    shared.facefleet_shared = True  # type: ignore[attr-defined]
    botocore.session.create_loader = shared


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (a botocore ClientError, or anything with ``code``)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return str(getattr(exc, "code", "") or "")


def is_missing(exc: BaseException) -> bool:
    """True when ``exc`` says the S3 object does not exist (the bucket does)."""
    return error_code(exc) in MISSING_OBJECT


class QueueDepthError(FacefleetError):
    """SQS answered GetQueueAttributes without usable counts."""

    default_code = "bad_queue_attributes"


VISIBLE: Final = "ApproximateNumberOfMessages"
IN_FLIGHT: Final = "ApproximateNumberOfMessagesNotVisible"
DELAYED: Final = "ApproximateNumberOfMessagesDelayed"
DEPTH_ATTRIBUTES: tuple[QueueAttributeFilterType, ...] = (VISIBLE, IN_FLIGHT, DELAYED)


@dataclass(frozen=True)
class QueueDepth:
    """Messages in a queue: waiting (``visible``), held by consumers (``in_flight``),
    and delayed."""

    visible: int
    in_flight: int
    delayed: int = 0

    def total(self, count_delayed: bool = False) -> int:
        """Messages that need a worker: visible + in flight (+ delayed when asked)."""
        return self.visible + self.in_flight + (self.delayed if count_delayed else 0)

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return {"visible": self.visible, "in_flight": self.in_flight, "delayed": self.delayed}


def parse_queue_depth(attributes: Mapping[Any, object]) -> QueueDepth:
    """A GetQueueAttributes ``Attributes`` map as a QueueDepth.

    Visible and in-flight counts are required, delayed defaults to 0; a missing,
    non-integer or negative count raises QueueDepthError.
    """
    values: dict[str, int] = {}
    for name in DEPTH_ATTRIBUTES:
        raw = attributes.get(name)
        if raw is None:
            if name == DELAYED:
                values[name] = 0
                continue
            raise QueueDepthError(f"SQS did not return {name}")
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise QueueDepthError(f"SQS returned {name}={raw!r}, not an integer") from None
        if value < 0:
            raise QueueDepthError(f"SQS returned a negative {name}={value}")
        values[name] = value
    return QueueDepth(values[VISIBLE], values[IN_FLIGHT], values[DELAYED])


def read_queue_depth(sqs: SQSClient, queue_url: str) -> QueueDepth:
    """One GetQueueAttributes call; botocore's errors and QueueDepthError propagate."""
    response = sqs.get_queue_attributes(QueueUrl=queue_url,
                                        AttributeNames=list(DEPTH_ATTRIBUTES))
    return parse_queue_depth(response.get("Attributes") or {})
