"""The ``facefleet.enroll`` task: photos in S3 in, one identity in the gallery updated."""

from __future__ import annotations

from typing import Any

import torch

from recognition.errors import GalleryError, ImageError, NoFaceError
from tasks.errors import BadImage, InvalidEnrolment
from tasks.objectstore import read_image
from tasks.state import state


def enroll(name: str, bucket: str, keys: list[str]) -> dict[str, Any]:
    """Embed the most confident face of each photo and add them to ``name``.

    Returns ``{"name", "enrolled": n, "photos": total}``. Every photo is checked before
    the gallery is written, so a bad photo enrols nothing.
    """
    if not keys:
        raise InvalidEnrolment("Send at least one photo to enrol.", "no_photos")
    worker = state()
    embeddings = []
    for key in keys:
        data = read_image(worker.objects, bucket, key)
        try:
            embeddings.append(worker.recognizer.embed_enrolment(data))
        except (ImageError, NoFaceError) as exc:
            raise BadImage(f"{key.rsplit('/', 1)[-1]}: {exc}", exc.code) from None
    try:
        gallery = worker.recognizer.gallery_store.enroll(
            name, torch.cat(embeddings), sources=[f"s3://{bucket}/{key}" for key in keys])
    except GalleryError as exc:
        raise InvalidEnrolment(str(exc), "invalid_name") from None
    # This process sees its own write at once (past the refresh rate limit); others
    # on their next refresh.
    worker.recognizer.refresh_gallery(force=True)
    return {"name": name, "enrolled": len(keys), "photos": gallery.counts().get(name, 0)}
