"""Error responses: JSON on the API, plain text on the compat route, never a traceback.

Views raise :class:`ApiError`; errors from the AWS side (unreachable endpoint, missing
bucket or queue, kombu connection errors) and from the task client (timeout, failed
task, unknown id) are translated here into one status and one actionable message.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, current_app, jsonify, request
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Blueprints whose clients speak the reference protocol (text/plain bodies).
PLAIN_TEXT_BLUEPRINTS = frozenset({"compat"})
# S3/SQS error codes meaning "the stack is not provisioned", not "the request is bad".
MISSING_RESOURCE_CODES = frozenset({
    "NoSuchBucket", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
    "NonExistentQueue",
})


class ApiError(Exception):
    """An HTTP error with a machine-readable ``code`` and a message a person can act on."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def unavailable(message: str, retry_after: int = 5) -> ApiError:
    """A 503 with Retry-After: the request was fine, the service cannot take it now."""
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


def translate_backend_error(exc: BaseException) -> ApiError | None:
    """Map an exception from boto3, kombu or the task client to an ApiError, or None.

    The task client's exceptions are matched by class name so this module does not
    import ``tasks`` (and Celery) at import time.
    """
    endpoint = _endpoint()
    name = type(exc).__name__
    if name == "ResultTimeout":
        return ApiError(504, "timeout", f"No result within the time limit: {exc}. The request "
                        "is still queued; fetch it later from its Location, or retry when the "
                        "fleet has scaled out.")
    if name == "UnknownRequest":
        return ApiError(404, "unknown_request", f"{exc}")
    if name == "TaskFailed":
        return task_failed(exc)
    if name == "InvalidUpload":
        return invalid_upload(exc)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING_RESOURCE_CODES:
            return unavailable(f"The AWS resources are missing at {endpoint} ({code}): "
                               "provision them with `make up` or `python -m deploy.stack up`.")
        return unavailable(f"The AWS endpoint {endpoint} refused the request ({code}); "
                           "check the service credentials and retry.")
    if isinstance(exc, BotoCoreError | OperationalError | ConnectionError | TimeoutError):
        return unavailable(f"The AWS endpoint {endpoint} is unreachable ({name}); start the "
                           "stack with `make up` (embedded) or check the network, then retry.")
    return None


# Failure codes that mean "this upload cannot be used" (the client should change it).
IMAGE_FAULT_KINDS = frozenset({"BadImage", "InvalidEnrolment", "ImageError", "NoFaceError"})
IMAGE_FAULT_CODES = frozenset({"empty", "truncated", "not_an_image", "too_large",
                               "unsupported", "no_face", "invalid_enrolment", "bad_name"})


def task_failed(exc: BaseException) -> ApiError:
    """A failed task: the image's fault (400) when the worker says so, else 502."""
    message = str(exc) or "the worker failed"
    code = str(getattr(exc, "code", "") or "")
    kind = str(getattr(exc, "kind", "") or "")
    if kind in IMAGE_FAULT_KINDS or code in IMAGE_FAULT_CODES:
        return ApiError(400, code or "bad_image",
                        f"The worker could not use this image: {message}")
    if code == "dead_letter":
        return ApiError(502, code, f"{message}. The message was moved to the dead-letter "
                        "queue; check the image, or the worker logs if other images fail too.")
    return ApiError(502, code or "task_failed", f"The recognition task failed: {message}. "
                    "Retry; if it keeps failing, check the worker logs.")


def invalid_upload(exc: BaseException) -> ApiError:
    """The task client refused the upload before queuing it (400, or 413 for size)."""
    code = str(getattr(exc, "code", "") or "invalid_upload")
    status = 413 if code in {"too_large", "too_many_pixels"} else 400
    return ApiError(status, code, str(exc))


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
        return error_response(ApiError(status, code, message))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        mapped = translate_backend_error(err)
        if mapped is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            mapped = ApiError(500, "internal", "Internal error; it has been logged. Retry, and "
                              "report it if it persists.")
        return error_response(mapped)


def _too_large_message() -> str:
    limit = current_app.extensions["facefleet"].settings.max_upload_bytes
    return (f"The upload is too large; each image may be at most {limit} bytes. Resize or "
            "recompress it and retry.")
