"""The reference protocol (``POST /`` with ``inputFile`` → ``<stem>:<label>``) and the
upload page at ``GET /``.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from webapp.access import require_api_key
from webapp.errors import ApiError
from webapp.recognize import recognize_and_wait
from webapp.services import get_services
from webapp.uploads import validate_image

bp = Blueprint("compat", __name__)


@bp.get("/")
def index() -> str:
    """The upload page: pick an image, see boxes, names and confidences over it."""
    services = get_services()
    return render_template("index.html", max_upload_bytes=services.settings.max_upload_bytes)


@bp.post("/")
@require_api_key("recognitions")
def classify() -> Response:
    """Recognise the image in field ``inputFile``; answer ``text/plain`` ``<stem>:<label>``.

    Errors are plain text too: 400 (missing field, not an image), 413 (too large),
    503 (AWS endpoint or queue unreachable, too many waiting), 504 (no result in time).
    """
    services = get_services()
    services.check_waiting_room()
    upload_file = request.files.get("inputFile")
    if upload_file is None:
        raise ApiError("Send the image as multipart/form-data in the "
                       "field 'inputFile', e.g. curl -F inputFile=@face.jpg http://HOST/",
                       "missing_field", status=400)
    upload = validate_image(upload_file.read(), upload_file.filename, field="inputFile",
                            max_bytes=services.settings.max_upload_bytes,
                            max_pixels=services.settings.max_pixels)
    result = recognize_and_wait(upload)
    # The worker's stem is the key of the label object it wrote; they agree by design.
    stem = result.get("stem") or upload.stem
    return Response(f"{stem}:{result['label']}", mimetype="text/plain")
