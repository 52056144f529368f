"""Error responses: JSON on the API, plain text on the compat route, never a traceback.

Views raise :class:`ApiError`; errors from the AWS side (unreachable endpoint, missing
bucket or queue, kombu connection errors), from the task client (timeout, failed task,
unknown id) and from the gallery are translated here, by type, into one status and one
actionable message.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, current_app, jsonify, request
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

from config.aws import MISSING_QUEUE, NO_SUCH_BUCKET, error_code
from config.errors import FacefleetError
from recognition.errors import GalleryError, ImageError, NoFaceError
from tasks.errors import (
    BadImage,
    InvalidEnrolment,
    InvalidUpload,
    ResultTimeout,
    TaskFailed,
    UnknownRequest,
)

log = logging.getLogger(__name__)

# Blueprints whose clients speak the reference protocol (text/plain bodies).
PLAIN_TEXT_BLUEPRINTS = frozenset({"compat"})
# AWS error codes meaning "the stack is not provisioned", not "the request is bad".
MISSING_RESOURCE_CODES = MISSING_QUEUE | {NO_SUCH_BUCKET}


class ApiError(FacefleetError):
    """An HTTP error: a message a person can act on, a machine-readable ``code``, the
    HTTP ``status``, extra response ``headers`` and extra JSON fields."""

    default_code = "error"

    def __init__(self, message: str, code: str | None = None, *, status: int,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message, code)
        self.status = status
        self.headers = headers or {}
        self.extra = extra


def unavailable(message: str, retry_after: int = 5) -> ApiError:
    """A 503 with Retry-After: the request was fine, the service cannot take it now."""
    return ApiError(message, "unavailable", status=503,
                    headers={"Retry-After": str(retry_after)})


def translate_backend_error(exc: BaseException) -> ApiError | None:
    """Map an exception from boto3, kombu, the task client or the gallery to an ApiError;
    None when it is none of those (a bug: the caller re-raises it)."""
    endpoint = _endpoint()
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ResultTimeout):
        return ApiError(f"No result within the time limit: {exc}. The request is still "
                        "queued; fetch it later from its Location, or retry when the fleet "
                        "has scaled out.", "timeout", status=504)
    if isinstance(exc, UnknownRequest):
        return ApiError(str(exc), "unknown_request", status=404)
    if isinstance(exc, TaskFailed):
        return task_failed(exc)
    if isinstance(exc, InvalidUpload):
        status = 413 if exc.code in {"too_large", "too_many_pixels"} else 400
        return ApiError(str(exc), exc.code, status=status)
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in MISSING_RESOURCE_CODES:
            return unavailable(f"The AWS resources are missing at {endpoint} ({code}): "
                               "provision them with `make up` or `python -m deploy.stack up`.")
        return unavailable(f"The AWS endpoint {endpoint} refused the request ({code}); "
                           "check the service credentials and retry.")
    if isinstance(exc, BotoCoreError | OperationalError | ConnectionError | TimeoutError):
        return unavailable(f"The AWS endpoint {endpoint} is unreachable "
                           f"({type(exc).__name__}); start the stack with `make up` "
                           "(embedded) or check the network, then retry.")
    if isinstance(exc, GalleryError):
        return ApiError(str(exc), "gallery_error", status=409)
    return None


# Failures that mean "this upload cannot be used" (the client should change it): the
# stored exception's class name, and the codes those classes store.
IMAGE_FAULT_KINDS = frozenset(cls.__name__ for cls in (BadImage, InvalidEnrolment, ImageError,
                                                       NoFaceError))
IMAGE_FAULT_CODES = frozenset({"empty", "truncated", "not_an_image", "too_large",
                               "too_many_pixels", "unsupported", "polyglot", "no_face",
                               "invalid_enrolment", "invalid_name", "bad_name"})
# Of those, the ones about size: 413 like the same refusal at the door.
SIZE_FAULT_CODES = frozenset({"too_large", "too_many_pixels"})


def task_failed(exc: TaskFailed) -> ApiError:
    """A failed task: the image's fault (400) when the worker says so, else 502."""
    message = str(exc) or "the worker failed"
    if exc.kind in IMAGE_FAULT_KINDS or exc.code in IMAGE_FAULT_CODES:
        return ApiError(f"The worker could not use this image: {message}",
                        exc.code or "bad_image",
                        status=413 if exc.code in SIZE_FAULT_CODES else 400)
    if exc.code == "storage_unreachable":  # S3 failed the worker on every retry
        return ApiError(f"The worker could not reach storage: {message}. Nothing was "
                        "recognised; send the image again.", exc.code, status=503,
                        headers={"Retry-After": "2"})
    if exc.kind == "TaskRevokedError":  # Celery's ``expires`` passed before it ran
        return ApiError("The request was not started before its deadline (the service "
                        "was overloaded), so nothing was recognised. Send the image again.",
                        "expired", status=503, headers={"Retry-After": "1"})
    if exc.code == "dead_letter":
        return ApiError(f"{message}. The message was moved to the dead-letter queue; check "
                        "the image, or the worker logs if other images fail too.",
                        exc.code, status=502)
    return ApiError(f"The recognition task failed: {message}. Retry; if it keeps failing, "
                    "check the worker logs.", exc.code or "task_failed", status=502)


def _endpoint() -> str:
    try:
        settings = current_app.extensions["facefleet"].settings
    except (RuntimeError, KeyError, AttributeError):
        return "the configured endpoint"
    return settings.aws_endpoint or "AWS"


def error_response(err: ApiError) -> Response:
    """Render ``err`` as JSON, or as ``text/plain`` on the compat route."""
    if request.blueprint in PLAIN_TEXT_BLUEPRINTS:
        response = Response(f"Error {err.status}: {err.message}\n", status=err.status,
                            mimetype="text/plain")
    else:
        body = {"error": err.code, "message": err.message, "status": err.status, **err.extra}
        response = jsonify(body)
        response.status_code = err.status
    for key, value in err.headers.items():
        response.headers[key] = value
    return response


def init_app(app: Flask) -> None:
    """Register handlers so every error leaves as JSON (or text) with a clear message."""

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        messages = {
            404: f"No such route: {request.method} {request.path}. See GET / for the upload "
                 "page and /api/v1/... for the API.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: _too_large_message(),
        }
        message = messages.get(status, err.description or err.name)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            status, err.name.lower().replace(" ", "_"))
        # Keep what the status needs (405's Allow, RFC 9110), not the HTML's Content-Type.
        headers = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
        return error_response(ApiError(message, code, status=status, headers=headers))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        mapped = translate_backend_error(err)
        if mapped is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            mapped = ApiError("Internal error; it has been logged. Retry, and "
                              "report it if it persists.", "internal", status=500)
        return error_response(mapped)


def _too_large_message() -> str:
    # Werkzeug refused the body from its Content-Length (or while streaming a chunked
    # one) before reading it: say how big it was and which limit applies here.
    limit = current_app.extensions["facefleet"].settings.max_upload_bytes
    length = request.content_length
    body = f"The request body is {length} bytes" if length else "The request body is too large"
    route_limit = request.max_content_length
    where = f"; this route accepts at most {route_limit} bytes" if route_limit else ""
    return (f"{body}{where}, and each image may be at most {limit} bytes "
            "(FACEFLEET_MAX_UPLOAD_BYTES). Resize or recompress it and retry.")
