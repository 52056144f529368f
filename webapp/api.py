"""``/api/v1/recognitions``: recognise an image now, or queue it and collect it later."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from tasks.keys import is_request_id
from webapp.errors import ApiError
from webapp.recognize import recognize_and_wait, submit
from webapp.services import get_services
from webapp.uploads import validate_image

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FALSE_WORDS = frozenset({"0", "false", "no", "off"})


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


@bp.post("/recognitions")
def create_recognition() -> tuple[Response, int] | Response:
    """Recognise the image in field ``image``.

    Default: wait and answer 200 with ``{request_id, label, faces: [{box, probability,
    identity, distance}], timings}``. With ``?wait=false``: answer 202 at once with the
    id and a ``Location`` to poll.
    """
    upload = _image_upload()
    if request.args.get("wait", "true").strip().lower() in FALSE_WORDS:
        request_id, submit_s = submit(upload)
        location = url_for("api.get_recognition", request_id=request_id)
        response = jsonify(request_id=request_id, status="pending", location=location,
                           timings={"submit": submit_s})
        response.headers["Location"] = location
        return response, 202
    result = recognize_and_wait(upload)
    result["status"] = "done"
    return jsonify(result)


@bp.get("/recognitions/<request_id>")
def get_recognition(request_id: str) -> tuple[Response, int] | Response:
    """The stored result of ``request_id``: 200 when done, 202 while pending, 404 unknown."""
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
