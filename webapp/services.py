"""The web tier's handles on the outside world, built once per app and reached through
``get_services()`` (no module globals): settings, the task client, the gallery store,
an S3 client for the fleet state, and the waiting-request limit.

The task client and gallery store are built lazily on first use, so the app starts
(and ``/healthz`` answers) even while the AWS endpoint is still coming up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from flask import Flask, current_app

from config.settings import Settings
from config.web import WebSettings
from webapp.errors import unavailable

log = logging.getLogger(__name__)


class TaskClient(Protocol):
    """What the web tier needs from ``tasks.client.RecognitionClient``."""

    def submit(self, data: bytes, filename: str) -> str: ...
    def wait(self, request_id: str, timeout: float) -> dict[str, Any]: ...
    def get(self, request_id: str) -> dict[str, Any] | None: ...
    def enroll(self, name: str, images: list[tuple[bytes, str]],
               timeout: float) -> dict[str, Any]: ...
    def queue_depth(self) -> Any: ...


class IdentityStore(Protocol):
    """What the web tier needs from ``recognition.gallery_store.GalleryStore``."""

    def identities(self) -> dict[str, int]: ...
    def remove(self, name: str) -> bool: ...


class Services:
    """Per-app dependencies; factories may be replaced through ``create_app``'s config."""

    def __init__(self, settings: Settings, web: WebSettings,
                 client_factory: Callable[[Settings], TaskClient] | None = None,
                 store_factory: Callable[[Settings], IdentityStore] | None = None) -> None:
        self.settings = settings
        self.web = web
        self._client_factory = client_factory or _default_client
        self._store_factory = store_factory or _default_store
        self._client: TaskClient | None = None
        self._store: IdentityStore | None = None
        self._s3: Any = None
        self._lock = threading.Lock()
        self._waiting = threading.BoundedSemaphore(web.max_waiting)

    @property
    def client(self) -> TaskClient:
        """The task client, built on first use (thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._client_factory(self.settings)
        return self._client

    @property
    def store(self) -> IdentityStore:
        """The gallery store (list/remove only; the model is never loaded here)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._store_factory(self.settings)
        return self._store

    @property
    def s3(self) -> Any:
        """A boto3 S3 client with short timeouts, for reading the fleet state."""
        if self._s3 is None:
            with self._lock:
                if self._s3 is None:
                    self._s3 = make_s3_client(self.settings)
        return self._s3

    def warm(self) -> bool:
        """Build the task client and open its connections before the first request, so
        that request does not pay for them; False (logged) when AWS is not reachable yet.
        """
        try:
            self.client.queue_depth()
        except Exception as exc:  # startup must not fail: requests will report it as 503
            log.warning("web tier not warmed (%s); the first request will retry", exc)
            return False
        return True

    def close(self) -> None:
        """Release the task client (its reply queue); the app may not be used after."""
        client, self._client = self._client, None
        close = getattr(client, "close", None)
        if close is not None:
            close()

    @contextmanager
    def waiting_slot(self) -> Iterator[None]:
        """Hold one of ``web.max_waiting`` slots while awaiting a result; 503 when full.

        Without this, request number threads+1 would queue inside gunicorn with no
        answer; a fast 503 with Retry-After is something a client can act on.
        """
        if not self._waiting.acquire(blocking=False):
            raise unavailable(f"{self.web.max_waiting} requests are already waiting for "
                              "results on this web server; retry in a few seconds.", 2)
        try:
            yield
        finally:
            self._waiting.release()


def make_s3_client(settings: Settings) -> Any:
    """boto3 S3 client that fails within seconds, never hangs a request thread."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})
    return boto3.client("s3", config=config, **settings.boto3_kwargs())


def _default_client(settings: Settings) -> TaskClient:
    from tasks.client import RecognitionClient  # deferred: imports Celery and kombu

    return RecognitionClient(settings)


def _default_store(settings: Settings) -> IdentityStore:
    from recognition.gallery_store import GalleryStore

    return GalleryStore.from_settings(settings)


def init_app(app: Flask, config: Mapping[str, Any]) -> Services:
    """Build the Services for ``app`` from ``config`` (or the environment) and attach them."""
    settings = config.get("FACEFLEET_SETTINGS") or Settings.from_env()
    web = config.get("FACEFLEET_WEB") or WebSettings.from_env()
    services = Services(settings, web, config.get("FACEFLEET_CLIENT_FACTORY"),
                        config.get("FACEFLEET_STORE_FACTORY"))
    app.extensions["facefleet"] = services
    return services


def get_services() -> Services:
    """The current app's Services (inside a request or app context)."""
    return current_app.extensions["facefleet"]
