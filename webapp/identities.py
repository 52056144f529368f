"""``/api/v1/identities``: enrol photos of a person, list and remove identities.

Enrolment runs on a worker (the model lives there; the web tier never loads it): the
photos go to the input bucket and the ``enroll`` task embeds them and updates the
gallery object, which every worker reloads when its version changes. Listing and
removal touch only the gallery object. Writes need ``X-API-Key`` when
``FACEFLEET_API_KEY`` is set.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from recognition.names import lookalike
from webapp.access import require_api_key
from webapp.errors import ApiError, translate_backend_error
from webapp.services import get_services
from webapp.uploads import read_upload, validate_identity_name, validate_image

bp = Blueprint("identities", __name__, url_prefix="/api/v1/identities")
# Multipart framing per file, on top of the image bytes themselves.
PER_FILE_OVERHEAD = 64 * 1024


@bp.post("/<name>/images")
@require_api_key("writes")
def enroll(name: str) -> tuple[Response, int]:
    """Enrol one or more photos (field ``image``, repeated) under ``name``: 201 with
    ``{name, enrolled, photos}`` (photos = the identity's total after this call).
    ---
    post:
      summary: Enrol photos of one person (all or nothing)
      operationId: enrollIdentity
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: EnrolmentForm}
      responses:
        "201":
          description: Enrolled; photos is the identity's total after this call.
          content:
            application/json: {schema: Enrolment}
        "400": BadRequest
        "409": Conflict
        "413": TooLarge
        "502": BadGateway
        "503": Unavailable
        "504": Timeout
    """
    validate_identity_name(name)
    services = get_services()
    # One request carries several files: raise the body limit to match (Flask 3.1), but
    # never past FACEFLEET_WEB_MAX_ENROL_BYTES, so a 60 MB body is refused (413) from its
    # Content-Length before it is read.
    request.max_content_length = min(services.web.max_enrol_bytes, services.web.max_files * (
        services.settings.max_upload_bytes + PER_FILE_OVERHEAD))
    files = request.files.getlist("image")
    if not files:
        raise ApiError("Send one or more photos in the multipart field "
                       f"'image', e.g. curl -F image=@a.jpg -F image=@b.jpg "
                       f"http://HOST/api/v1/identities/{name}/images", "missing_field", status=400)
    if len(files) > services.web.max_files:
        raise ApiError(f"{len(files)} files sent; at most "
                       f"{services.web.max_files} per request. Split them into several "
                       "requests.", "too_many_files", status=413)
    uploads = [validate_image(read_upload(f.stream, services.settings.max_upload_bytes),
                              f.filename, field="image",
                              max_bytes=services.settings.max_upload_bytes,
                              max_pixels=services.settings.max_pixels) for f in files]
    twin = lookalike(name, services.store.identities())
    if twin is not None:
        raise ApiError(f"{name!r} differs from the enrolled {twin!r} only in letter case; "
                       f"add the photos to {twin!r} or choose a distinct name.",
                       "name_lookalike", status=409)
    with services.waiting_slot():
        try:
            result = services.client.enroll(name, [(u.data, u.filename) for u in uploads],
                                            services.web.enrol_timeout)
        except Exception as exc:
            mapped = translate_backend_error(exc)
            if mapped is None:
                raise
            if mapped.status == 400:
                mapped.message = (f"Could not enrol {name!r}: {exc}. Each photo must show "
                                  "the person's face clearly; nothing was enrolled.")
            raise mapped from None
    return jsonify(dict(result)), 201


@bp.get("")
def list_identities() -> Response:
    """``{identities: [{name, photos}], count}``, sorted by name.
    ---
    get:
      summary: List enrolled identities and their photo counts
      operationId: listIdentities
      responses:
        "200":
          description: Every identity, sorted by name.
          content:
            application/json: {schema: IdentityList}
        "409": Conflict
        "503": Unavailable
    """
    identities = get_services().store.identities()
    items = [{"name": n, "photos": c} for n, c in sorted(identities.items())]
    return jsonify(identities=items, count=len(items))


@bp.delete("/<name>")
@require_api_key("writes")
def remove(name: str) -> Response:
    """Remove ``name`` and all its photos: 200, or 404 when it is not enrolled.
    ---
    delete:
      summary: Remove an identity and all its photos
      operationId: removeIdentity
      responses:
        "200":
          description: Removed.
          content:
            application/json: {schema: Removal}
        "400": BadRequest
        "404": NotFound
        "409": Conflict
        "503": Unavailable
    """
    validate_identity_name(name)
    removed = get_services().store.remove(name)
    if not removed:
        raise ApiError(f"{name!r} is not enrolled; GET "
                       "/api/v1/identities lists who is.", "unknown_identity", status=404)
    return jsonify(name=name, removed=True)
