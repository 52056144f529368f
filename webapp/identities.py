"""``/api/v1/identities``: enrol photos of a person, list and remove identities.

Enrolment runs on a worker (the model lives there; the web tier never loads it): the
photos go to the input bucket and the ``enroll`` task embeds them and updates the
gallery object, which every worker reloads when its version changes. Listing and
removal touch only the gallery object. Writes need ``X-API-Key`` when
``FACEFLEET_API_KEY`` is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import Blueprint, Response, jsonify, request

from webapp.errors import ApiError, translate_backend_error
from webapp.services import get_services
from webapp.uploads import validate_identity_name, validate_image

bp = Blueprint("identities", __name__, url_prefix="/api/v1/identities")
P = ParamSpec("P")
R = TypeVar("R")
# Multipart framing per file, on top of the image bytes themselves.
PER_FILE_OVERHEAD = 64 * 1024


def require_api_key(view: Callable[P, R]) -> Callable[P, R]:
    """401 without ``X-API-Key`` and 403 with a wrong one, when an API key is configured."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        expected = get_services().settings.api_key
        if expected:
            given = request.headers.get("X-API-Key")
            if not given:
                raise ApiError("This write needs the header "
                               "'X-API-Key: <key>' (the value of FACEFLEET_API_KEY on the "
                               "server).",
                               "api_key_required", status=401,
                               headers={"WWW-Authenticate": "X-API-Key"})
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise ApiError("The X-API-Key header does not match "
                               "the server's FACEFLEET_API_KEY.", "api_key_invalid", status=403)
        return view(*args, **kwargs)

    return wrapper


@bp.post("/<name>/images")
@require_api_key
def enroll(name: str) -> tuple[Response, int]:
    """Enrol one or more photos (field ``image``, repeated) under ``name``: 201 with
    ``{name, enrolled, photos}`` (photos = the identity's total after this call).
    """
    validate_identity_name(name)
    services = get_services()
    # One request carries several files: raise the body limit to match (Flask 3.1).
    request.max_content_length = services.web.max_files * (
        services.settings.max_upload_bytes + PER_FILE_OVERHEAD)
    files = request.files.getlist("image")
    if not files:
        raise ApiError("Send one or more photos in the multipart field "
                       f"'image', e.g. curl -F image=@a.jpg -F image=@b.jpg "
                       f"http://HOST/api/v1/identities/{name}/images", "missing_field", status=400)
    if len(files) > services.web.max_files:
        raise ApiError(f"{len(files)} files sent; at most "
                       f"{services.web.max_files} per request. Split them into several "
                       "requests.", "too_many_files", status=413)
    uploads = [validate_image(f.read(), f.filename, field="image",
                              max_bytes=services.settings.max_upload_bytes,
                              max_pixels=services.settings.max_pixels) for f in files]
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
    """``{identities: [{name, photos}], count}``, sorted by name."""
    identities = get_services().store.identities()
    items = [{"name": n, "photos": c} for n, c in sorted(identities.items())]
    return jsonify(identities=items, count=len(items))


@bp.delete("/<name>")
@require_api_key
def remove(name: str) -> Response:
    """Remove ``name`` and all its photos: 200, or 404 when it is not enrolled."""
    validate_identity_name(name)
    removed = get_services().store.remove(name)
    if not removed:
        raise ApiError(f"{name!r} is not enrolled; GET "
                       "/api/v1/identities lists who is.", "unknown_identity", status=404)
    return jsonify(name=name, removed=True)
