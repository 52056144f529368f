"""The request path's S3 reads and writes (images, label objects, Celery results),
through MinIO's Python SDK.

Why not boto3 here: each request costs a worker three S3 calls (GET the image, PUT the
label object, PUT the Celery result), and at saturation the worker's core is the
bottleneck, so their CPU is throughput. ``minio``, a maintained S3 client that signs
with SigV4 straight onto urllib3, spends about half the CPU per call that boto3 does
(botocore's event hooks, endpoint rules, serialisers and parsers run on every call);
the figures are in docs/benchmarks.md.

Everything else -- provisioning, the web tier's uploads, the gallery, the autoscaler --
stays on boto3 (:mod:`config.aws`). Both clients sign with the same identity: the
embedded endpoint's fixed keys, or botocore's own credential chain (environment,
profile, instance role) handed to ``minio`` through :class:`BotocoreCredentials`.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import certifi
import urllib3
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.credentials.providers import Provider, StaticProvider
from minio.error import MinioException, S3Error

from config.aws import MISSING_OBJECT, NO_SUCH_BUCKET, endpoint_kwargs
from config.settings import Settings
from tasks.errors import MissingImage, MissingObject, StorageError

#: Tries per call (the botocore ``worker`` purpose of config/aws.py makes 4);
#: 5 with backoff rides out S3's SlowDown and a brief 5xx storm (bench.faults).
MAX_ATTEMPTS = 5
MAX_POOL_CONNECTIONS = 16
#: A loopback or in-region call takes milliseconds; these bound a stuck endpoint.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0


def endpoint_host(endpoint_url: str | None, region: str) -> tuple[str, bool]:
    """``(host[:port], secure)`` for minio: the given endpoint, or AWS S3 in ``region``."""
    if endpoint_url is None:
        return f"s3.{region}.amazonaws.com", True
    parts = urlsplit(endpoint_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"S3 endpoint {endpoint_url!r} must be an http(s)://host[:port] URL")
    if parts.path not in {"", "/"}:
        raise ValueError(f"S3 endpoint {endpoint_url!r} must not have a path")
    return parts.netloc, parts.scheme == "https"


class BotocoreCredentials(Provider):
    """minio credentials from botocore's chain, refreshed by botocore (instance roles)."""

    def __init__(self, botocore_credentials: Any) -> None:
        self._credentials = botocore_credentials

    def retrieve(self) -> Credentials:
        frozen = self._credentials.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def _http_pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(
        maxsize=MAX_POOL_CONNECTIONS,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
        # GET and PUT of a whole object are idempotent, so a 5xx or a dropped
        # connection is retried like boto3's standard mode does.
        retries=urllib3.Retry(total=MAX_ATTEMPTS - 1, backoff_factor=0.2,
                              status_forcelist=(500, 502, 503, 504)),
        cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
    )


class ObjectStore:
    """Whole-object GET and PUT on S3, with errors a person can act on."""

    def __init__(self, client: Minio, http: urllib3.PoolManager) -> None:
        self.client = client
        #: The connection pool ``client`` sends through (each S3 call is one ``urlopen``).
        self.http = http

    @classmethod
    def connect(cls, endpoint_url: str | None, region: str, access_key: str | None = None,
                secret_key: str | None = None) -> ObjectStore:
        """A store on ``endpoint_url`` (None: AWS itself) in ``region``.

        Without keys, credentials come from botocore's chain, as boto3's would.
        """
        host, secure = endpoint_host(endpoint_url, region)
        provider: Provider
        if access_key and secret_key:
            provider = StaticProvider(access_key, secret_key)
        else:
            found = botocore.session.get_session().get_credentials()
            if found is None:
                raise StorageError("No AWS credentials found for S3 (environment, "
                                   "profile or instance role); configure one.",
                                   "no_credentials")
            provider = BotocoreCredentials(found)
        http = _http_pool()
        return cls(Minio(host, secure=secure, region=region, credentials=provider,
                         http_client=http), http)

    @classmethod
    def shared(cls, endpoint_url: str | None, region: str, access_key: str | None = None,
               secret_key: str | None = None) -> ObjectStore:
        """This process's store for these arguments, connected on first use.

        The worker's tasks and Celery's result backend share it (one connection pool);
        a forked child gets its own, since a pool must not cross a fork.
        """
        return _shared_store(os.getpid(), endpoint_url, region, access_key, secret_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        """This process's store for :class:`config.settings.Settings` (endpoint, region,
        keys)."""
        kwargs = endpoint_kwargs(settings)
        return cls.shared(settings.aws_endpoint, settings.region,
                          kwargs.get("aws_access_key_id"), kwargs.get("aws_secret_access_key"))

    def get(self, bucket: str, key: str) -> bytes:
        """The bytes of ``s3://bucket/key``; MissingObject when it is not there."""
        try:
            response = self.client.get_object(bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        except (S3Error, MinioException, urllib3.exceptions.HTTPError, OSError,
                ValueError) as exc:
            raise _translate(exc, "read", bucket, key) from exc

    def put(self, bucket: str, key: str, body: bytes,
            content_type: str = "application/octet-stream") -> None:
        """Write ``body`` as ``s3://bucket/key`` (one PUT, replacing any object there)."""
        try:
            self.client.put_object(bucket, key, io.BytesIO(body), len(body),
                                   content_type=content_type)
        except (S3Error, MinioException, urllib3.exceptions.HTTPError, OSError,
                ValueError) as exc:
            raise _translate(exc, "write", bucket, key) from exc

    def remove(self, bucket: str, key: str) -> None:
        """Delete ``s3://bucket/key`` (nothing there is not an error, as on S3)."""
        try:
            self.client.remove_object(bucket, key)
        except (S3Error, MinioException, urllib3.exceptions.HTTPError, OSError,
                ValueError) as exc:
            raise _translate(exc, "delete", bucket, key) from exc


@lru_cache(maxsize=8)
def _shared_store(pid: int, endpoint_url: str | None, region: str, access_key: str | None,
                  secret_key: str | None) -> ObjectStore:
    # ``pid`` is part of the key only so that a forked child connects anew.
    return ObjectStore.connect(endpoint_url, region, access_key, secret_key)


def _translate(exc: BaseException, verb: str, bucket: str, key: str) -> StorageError:
    where = f"s3://{bucket}/{key}"
    if isinstance(exc, S3Error):
        if exc.code in MISSING_OBJECT or exc.code == NO_SUCH_BUCKET:
            return MissingObject(f"Could not {verb} {where}: it does not exist ({exc.code}).")
        return StorageError(f"S3 refused to {verb} {where}: {exc.code}: {exc.message}",
                            "storage_refused")
    if isinstance(exc, ValueError):
        return StorageError(f"Cannot {verb} {where}: {exc}", "storage_refused")
    return StorageError(f"Could not {verb} {where}: S3 is unreachable ({exc}). Check "
                            "the endpoint and retry.", "storage_unreachable")


# ---- the tasks' objects ----------------------------------------------------------------


def read_image(store: ObjectStore, bucket: str, key: str) -> bytes:
    """The bytes of ``s3://bucket/key``; MissingImage when it is not there."""
    try:
        return store.get(bucket, key)
    except MissingObject as exc:
        raise MissingImage(f"The image s3://{bucket}/{key} does not exist; upload it "
                           "again.") from exc


def write_label(store: ObjectStore, bucket: str, stem: str, label: str) -> None:
    """The original system's output: object ``<stem>`` whose body is the label."""
    store.put(bucket, stem, label.encode("utf-8"), "text/plain; charset=utf-8")
