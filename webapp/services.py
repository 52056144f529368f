"""The web tier's handles on the outside world, built once per app and reached through
``get_services()`` (no module globals): settings, the task client, the gallery store,
an S3 client for the fleet state, and the waiting-request limit.

The task client and gallery store are built lazily on first use, so the app starts
(and ``/healthz`` answers) even while the AWS endpoint is still coming up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from config.admission import AdmissionSettings
from config.aws import s3_client
from config.settings import Settings
from config.web import WebSettings
from recognition.gallery_store import GalleryStore
from tasks.client import RecognitionClient
from webapp.admission import Admission
from webapp.errors import ApiError, unavailable

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)


class Services:
    """Per-app dependencies."""

    def __init__(self, settings: Settings, web: WebSettings,
                 admission: AdmissionSettings | None = None) -> None:
        self.settings = settings
        self.web = web
        #: This process's outstanding requests and service rate (webapp/admission.py).
        self.admission = Admission(admission or AdmissionSettings.from_env(),
                                   base_wait=settings.result_timeout)
        self._client: RecognitionClient | None = None
        self._store: GalleryStore | None = None
        self._s3: S3Client | None = None
        self._lock = threading.Lock()
        self._waiting = threading.BoundedSemaphore(web.max_waiting)

    @property
    def client(self) -> RecognitionClient:
        """The task client, built on first use (thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = RecognitionClient(self.settings)
        return self._client

    @property
    def store(self) -> GalleryStore:
        """The gallery store (list/remove only; the model is never loaded here)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = GalleryStore.from_settings(self.settings)
        return self._store

    @property
    def s3(self) -> S3Client:
        """A boto3 S3 client with short timeouts, for reading the fleet state."""
        if self._s3 is None:
            with self._lock:
                if self._s3 is None:
                    self._s3 = s3_client(self.settings, "interactive")
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
        if client is not None:
            client.close()

    def check_waiting_room(self) -> None:
        """Refuse (503) at once when every waiting slot is taken, before the request's
        body is parsed: shedding must cost less than serving. Under 3x overload a web
        process refused about 30 requests a second, each after parsing its upload, with
        CPU the workers needed. Only a peek: :meth:`waiting_slot` still decides."""
        if not self._waiting.acquire(blocking=False):
            raise self._busy()
        self._waiting.release()

    def _busy(self) -> ApiError:
        return unavailable(f"{self.web.max_waiting} requests are already waiting for "
                           "results on this web server; retry in a few seconds.", 2)

    @contextmanager
    def waiting_slot(self) -> Iterator[None]:
        """Hold one of ``web.max_waiting`` slots while awaiting a result; 503 when full.

        Without this, request number threads+1 would queue inside gunicorn with no
        answer; a fast 503 with Retry-After is something a client can act on.
        """
        if not self._waiting.acquire(blocking=False):
            raise self._busy()
        try:
            yield
        finally:
            self._waiting.release()


def init_app(app: Flask, config: Mapping[str, Any]) -> Services:
    """Build the Services for ``app`` from ``config`` (or the environment) and attach them."""
    settings = config.get("FACEFLEET_SETTINGS") or Settings.from_env()
    web = config.get("FACEFLEET_WEB") or WebSettings.from_env()
    services = Services(settings, web, config.get("FACEFLEET_ADMISSION"))
    app.extensions["facefleet"] = services
    return services


def get_services() -> Services:
    """The current app's Services (inside a request or app context)."""
    services: Services = current_app.extensions["facefleet"]
    return services
