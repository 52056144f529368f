"""RecognitionClient: submit images, await or collect results (the web tier's only door).

    client = RecognitionClient(settings)
    request_id = client.submit(data, "face.jpg")     # image -> input bucket, task -> SQS
    result = client.wait(request_id, timeout=30)     # ResultTimeout / TaskFailed
    client.get(request_id)                           # None while pending

Awaiting: with the completion signal (default) the client owns an SQS reply queue
(:mod:`tasks.completion`); ``wait`` sleeps until the worker's signal, then returns the
copy of the stored result that the signal carries, or reads it from S3 (the source of
truth) when it carries none (failures, large results), and polls S3 in case a signal
is lost: first after ``FACEFLEET_SIGNAL_FALLBACK_POLL`` seconds, then at twice the
previous interval, up to ``FALLBACK_BACKOFF`` times that period. Without it,
``wait`` is Celery's ``AsyncResult.get`` (an S3 poll every 0.5 s).

Thread-safe: one client serves every request thread of a web process. After a fork
the child makes its own reply queue on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult

from config.aws import QueueDepth, read_queue_depth, s3_client, sqs_client
from config.serving import ServingSettings
from config.settings import Settings
from tasks.completion import REPLY_HEADER, ReplyListener, reap_stale_reply_queues
from tasks.errors import InvalidUpload, ResultTimeout, TaskFailed, UnknownRequest
from tasks.factory import ENROLL, RECOGNIZE, make_app
from tasks.keys import (
    enrol_key,
    image_key,
    is_request_id,
    new_request_id,
    request_prefixes,
    stem_of,
)
from tasks.results import StoredResult, fetch_result

log = logging.getLogger(__name__)

#: The fallback poll's interval doubles up to this many times FACEFLEET_SIGNAL_FALLBACK_POLL.
#: A lost signal is rare (a worker killed between storing a result and signalling), but
#: every waiter polls: at a fixed 5 s, the 144 requests a web process holds under
#: overload made 29 S3 GETs a second that found nothing, on the endpoint the workers
#: need (bench.overload). Doubling finds a lost signal's result within about the time
#: already waited, and costs a 14 s wait one poll instead of two, a 90 s wait five instead
#: of eighteen.
FALLBACK_BACKOFF = 4.0


class RecognitionClient:
    """Submits recognition and enrolment tasks and awaits their S3-backed results."""

    def __init__(self, settings: Settings | None = None,
                 serving: ServingSettings | None = None, *,
                 completion_signal: bool | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.serving = serving or ServingSettings.from_env()
        self.completion_signal = (self.serving.completion_signal if completion_signal is None
                                  else completion_signal)
        self.app = make_app(self.settings, self.serving)
        # Request threads wait on these: one pooled connection each, short timeouts.
        self._s3 = s3_client(self.settings, "request")
        self._sqs = sqs_client(self.settings, "request")
        self._queue_url: str | None = None
        self._listener: ReplyListener | None = None
        self._listener_pid = 0
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    # ---- submitting --------------------------------------------------------------

    def submit(self, data: bytes, filename: str, *, expires: float | None = None) -> str:
        """Put the image in the input bucket and queue its recognition; return its id.

        ``expires``: seconds from now after which a worker drops the task unrun (its
        waiter is gone); None: it runs whenever it is reached. Raises InvalidUpload
        (empty, too large) before anything is stored.
        """
        self._check_upload(data, filename)
        request_id = new_request_id()
        key = image_key(request_id, filename)
        self._s3.put_object(Bucket=self.settings.input_bucket, Key=key, Body=data)
        self._send(RECOGNIZE, [self.settings.input_bucket, key, request_id,
                               stem_of(filename)], request_id, expires=expires)
        return request_id

    def enroll(self, name: str, images: list[tuple[bytes, str]],
               timeout: float) -> dict[str, Any]:
        """Enrol ``images`` (bytes, filename) under ``name``; wait for the worker.

        Returns ``{"name", "enrolled", "photos"}``; raises InvalidUpload, TaskFailed
        (bad photo, bad name) or ResultTimeout.
        """
        if not images:
            raise InvalidUpload("Send at least one photo to enrol.", "no_images")
        for data, filename in images:
            self._check_upload(data, filename)
        request_id = new_request_id()
        keys = []
        for index, (data, filename) in enumerate(images):
            key = enrol_key(request_id, index, filename)
            self._s3.put_object(Bucket=self.settings.input_bucket, Key=key, Body=data)
            keys.append(key)
        self._send(ENROLL, [name, self.settings.input_bucket, keys], request_id)
        return self.wait(request_id, timeout)

    def _check_upload(self, data: bytes, filename: str) -> None:
        if not data:
            raise InvalidUpload(f"The file {filename!r} is empty; send an image.", "empty")
        limit = self.settings.max_upload_bytes
        if len(data) > limit:
            raise InvalidUpload(
                f"The file {filename!r} has {len(data)} bytes; the limit is {limit} "
                "(FACEFLEET_MAX_UPLOAD_BYTES). Send a smaller image.", "too_large")

    def _send(self, task: str, args: list[Any], request_id: str, *,
              expires: float | None = None) -> None:
        headers = {}
        listener = self._reply_listener()
        if listener is not None:
            listener.expect(request_id)
            headers[REPLY_HEADER] = listener.url
        self.app.send_task(task, args=args, task_id=request_id, headers=headers,
                           expires=expires)

    # ---- results -----------------------------------------------------------------

    def get(self, request_id: str) -> dict[str, Any] | None:
        """The result of ``request_id``; None while pending.

        Raises TaskFailed if it failed, UnknownRequest if no such request exists.
        """
        stored = self._fetch(request_id)
        if stored is None or not stored.ready:
            if not self._exists(request_id):
                raise UnknownRequest(f"No request {request_id!r} was submitted here.")
            return None
        return self._unwrap(request_id, stored)

    def wait(self, request_id: str, timeout: float, *,
             deadline: Callable[[], float] | None = None) -> dict[str, Any]:
        """Block until ``request_id`` has a result (at most ``timeout`` seconds).

        ``deadline``, when given, is asked again at every wake-up for the
        ``time.monotonic()`` at which to give up instead (a wait that follows the
        work: webapp/admission.py); ``timeout`` then only names it in the error.
        """
        if not is_request_id(request_id):
            raise UnknownRequest(f"{request_id!r} is not a request id of this service.")
        started = time.monotonic()
        fixed = started + timeout
        give_up = deadline or (lambda: fixed)
        if not self.completion_signal:
            return self._wait_celery(request_id, max(0.0, give_up() - started))
        listener = self._reply_listener()
        # Sent by this client, so the worker signals this client's queue right after it
        # stores the result: wait for that signal (or the fallback period) before the
        # first S3 GET, which right after submit is all but certain to miss and takes
        # CPU from the worker on a small machine.
        signalled = listener is not None and listener.alive and listener.expects(request_id)
        event = listener.expect(request_id) if listener is not None else None
        fallback = self.serving.signal_fallback_poll
        try:
            while True:
                carried = listener.take_result(request_id) if listener is not None else None
                if carried is not None:
                    return carried  # the copy of the stored result its signal carried
                if signalled:
                    signalled = False
                else:
                    stored = self._fetch(request_id)
                    if stored is not None and stored.ready:
                        return self._unwrap(request_id, stored)
                now = time.monotonic()
                remaining = give_up() - now
                if remaining <= 0:
                    raise ResultTimeout(
                        f"request {request_id} has no result after {now - started:.0f} s")
                if event is None or listener is None or not listener.alive:
                    time.sleep(min(remaining, self.serving.result_poll_interval))
                elif event.wait(min(remaining, fallback)):
                    event.clear()
                else:
                    fallback = min(2 * fallback,
                                   FALLBACK_BACKOFF * self.serving.signal_fallback_poll)
        finally:
            if listener is not None:
                listener.forget(request_id)

    def _wait_celery(self, request_id: str, timeout: float) -> dict[str, Any]:
        """Celery's own await: ``AsyncResult.get`` polling S3 (for comparison)."""
        result = AsyncResult(request_id, app=self.app)
        try:
            result.get(timeout=timeout, interval=self.serving.result_poll_interval,
                       propagate=False, disable_sync_subtasks=False)
        except CeleryTimeout:
            raise ResultTimeout(
                f"request {request_id} has no result after {timeout:g} s") from None
        stored = self._fetch(request_id)
        if stored is None:
            raise ResultTimeout(f"request {request_id} has no stored result")
        return self._unwrap(request_id, stored)

    def _fetch(self, request_id: str) -> StoredResult | None:
        if not is_request_id(request_id):
            raise UnknownRequest(f"{request_id!r} is not a request id of this service.")
        return fetch_result(self._s3, self.settings.output_bucket, request_id)

    def _exists(self, request_id: str) -> bool:
        """True when an image of ``request_id`` is in the input bucket."""
        for prefix in request_prefixes(request_id):
            page = self._s3.list_objects_v2(Bucket=self.settings.input_bucket, Prefix=prefix,
                                            MaxKeys=1)
            if page.get("KeyCount", 0):
                return True
        return False

    @staticmethod
    def _unwrap(request_id: str, stored: StoredResult) -> dict[str, Any]:
        if stored.failed:
            raise TaskFailed(str(stored.value), stored.error_code, kind=stored.error_type)
        value = stored.value
        if not isinstance(value, dict):
            raise TaskFailed(f"request {request_id} returned {value!r}, not a result")
        return value

    # ---- queue and lifecycle -----------------------------------------------------

    def queue_depth(self) -> QueueDepth:
        """Messages waiting and in flight on the request queue (SQS's approximations)."""
        return read_queue_depth(self._sqs, self._request_queue_url())

    def _request_queue_url(self) -> str:
        if self._queue_url is None:
            self._queue_url = self.app.conf.broker_transport_options["predefined_queues"][
                self.settings.queue]["url"]
        return self._queue_url

    @property
    def reply_queue_url(self) -> str | None:
        """URL of this process's reply queue (None until first use, or when disabled)."""
        listener = self._listener
        return listener.url if listener is not None and self._listener_pid == os.getpid() \
            else None

    def _reply_listener(self) -> ReplyListener | None:
        if not self.completion_signal or self._closed:
            return None
        pid = os.getpid()
        if self._listener is not None and self._listener_pid == pid:
            return self._listener
        with self._lock:
            if self._listener is None or self._listener_pid != pid:
                try:
                    self._listener = ReplyListener(
                        self._sqs, self.serving.reply_queue_prefix,
                        self.serving.wait_time_seconds or 20, self.serving.reply_queue_ttl)
                except ClientError as exc:
                    # Without a reply queue wait() polls S3: slower, still correct.
                    log.warning("no completion signal (reply queue not created): %s", exc)
                    self.completion_signal = False
                    return None
                self._listener_pid = pid
                threading.Thread(target=self._reap, name="facefleet-reaper",
                                 daemon=True).start()
            return self._listener

    def _reap(self) -> None:
        try:
            reap_stale_reply_queues(self._sqs, self.serving.reply_queue_prefix,
                                    self.serving.reply_queue_ttl)
        except ClientError as exc:
            log.info("could not look for stale reply queues: %s", exc)

    def close(self) -> None:
        """Delete this process's reply queue (idempotent; also run at exit)."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None and self._listener_pid == os.getpid():
            listener.close()
        atexit.unregister(self.close)
