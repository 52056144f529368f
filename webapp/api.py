"""``/api/v1/recognitions``: recognise an image now, or queue it and collect it later."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from config.env import FALSE_WORDS, TRUE_WORDS
from tasks.keys import is_request_id
from webapp.access import require_api_key
from webapp.errors import ApiError
from webapp.recognize import recognize_and_wait, submit_later
from webapp.services import get_services
from webapp.uploads import validate_image

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _image_upload() -> Any:
    services = get_services()
    upload_file = request.files.get("image")
    if upload_file is None:
        raise ApiError("Send the image as multipart/form-data in the "
                       "field 'image', e.g. curl -F image=@face.jpg http://HOST/api/v1/"
                       "recognitions", "missing_field", status=400)
    return validate_image(upload_file.read(), upload_file.filename, field="image",
                          max_bytes=services.settings.max_upload_bytes,
                          max_pixels=services.settings.max_pixels)


def _wait_parameter() -> bool:
    """``?wait=``: true when absent; a word it does not know is refused rather than read
    as true (``wait=flase`` would otherwise hold the client for the whole wait)."""
    raw = request.args.get("wait", "true").strip().lower()
    if raw not in TRUE_WORDS | FALSE_WORDS:
        raise ApiError(f"wait={raw[:40]!r} is not a boolean; use wait=false to get 202 and "
                       "the id at once, or leave it out to wait for the result.",
                       "bad_parameter", status=400)
    return raw in TRUE_WORDS


@bp.post("/recognitions")
@require_api_key("recognitions")
def create_recognition() -> tuple[Response, int] | Response:
    """Recognise the image in field ``image``.

    Default: wait and answer 200 with ``{request_id, label, faces: [{box, probability,
    identity, distance}], timings}``. With ``?wait=false``: answer 202 at once with the
    id and a ``Location`` to poll.
    ---
    post:
      summary: Recognise every face in an image
      operationId: createRecognition
      parameters:
        - name: wait
          in: query
          description: false (or 0, no, off) answers 202 at once with the id to poll.
          schema:
            type: string
            enum: ["true", "false", "1", "0", "yes", "no", "on", "off"]
            default: "true"
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: ImageForm}
      responses:
        "200":
          description: Every face with its box, probability, identity and distance.
          content:
            application/json: {schema: Recognition}
        "202": Queued
        "400": BadRequest
        "413": TooLarge
        "502": BadGateway
        "503": Unavailable
        "504": Timeout
    """
    wait = _wait_parameter()
    if wait:
        get_services().check_waiting_room()
    upload = _image_upload()
    if not wait:
        request_id, submit_s = submit_later(upload)
        location = url_for("api.get_recognition", request_id=request_id)
        response = jsonify(request_id=request_id, status="pending", location=location,
                           timings={"submit": submit_s})
        response.headers["Location"] = location
        return response, 202
    result = recognize_and_wait(upload)
    result["status"] = "done"
    return jsonify(result)


@bp.get("/recognitions/<request_id>")
@require_api_key("recognitions")
def get_recognition(request_id: str) -> tuple[Response, int] | Response:
    """The stored result of ``request_id``: 200 when done, 202 while pending, 404 unknown.
    ---
    get:
      summary: Collect the result of a recognition
      operationId: getRecognition
      responses:
        "200":
          description: The stored result.
          content:
            application/json: {schema: Recognition}
        "202": Pending
        "400": BadRequest
        "404": NotFound
        "413": TooLarge
        "502": BadGateway
        "503": Unavailable
    """
    if not is_request_id(request_id):
        raise ApiError(f"No recognition request {request_id[:80]!r}; "
                       "ids are the request_id values returned by POST /api/v1/recognitions.",
                       "unknown_request", status=404)
    result = get_services().client.get(request_id)
    if result is None:
        response = jsonify(request_id=request_id, status="pending")
        response.headers["Retry-After"] = "1"
        return response, 202
    body = dict(result)
    body["status"] = "done"
    return jsonify(body)
