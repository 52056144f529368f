"""The ``facefleet.enroll`` task: photos in S3 in, one identity in the gallery updated."""

from __future__ import annotations

from typing import Any

import torch

from recognition.errors import GalleryError, ImageError, NoFaceError
from recognition.names import name_problem
from tasks.arguments import current_task_id, enroll_problem, refuse_if
from tasks.errors import BadImage, InvalidEnrolment
from tasks.objectstore import read_image
from tasks.state import state


def enroll(name: str, bucket: str, keys: list[str]) -> dict[str, Any]:
    """Embed the most confident face of each photo and add them to ``name``.

    Returns ``{"name", "enrolled": n, "photos": total}``. Every photo is checked before
    the gallery is written, so a bad photo enrols nothing. A message naming another
    bucket or another request's keys is refused before any S3 call
    (:mod:`tasks.arguments`); a bad name before any photo is read.
    """
    worker = state()
    task_id = current_task_id()
    refuse_if(enroll_problem((name, bucket, keys), task_id=task_id,
                             input_bucket=worker.settings.input_bucket),
              "facefleet.enroll", task_id)
    problem = name_problem(name)
    if problem is not None:
        raise InvalidEnrolment(f"invalid identity name {name[:72]!a}: {problem}",
                               "invalid_name")
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
