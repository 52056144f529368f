"""The ``facefleet.recognize`` task: an image in S3 in, faces and a label out."""

from __future__ import annotations

import logging
import time
from typing import Any

from recognition.errors import ImageError
from tasks.arguments import current_task_id, recognize_problem, refuse_if
from tasks.errors import BadImage
from tasks.objectstore import read_image, write_label
from tasks.state import state

log = logging.getLogger(__name__)


def recognize(bucket: str, key: str, request_id: str, stem: str) -> dict[str, Any]:
    """Recognise ``s3://bucket/key``; write the label object; return the JSON result.

    Returns ``Recognition.to_dict()`` plus ``request_id``, ``stem``, ``image`` and
    ``timings.fetch``/``timings.store``. An unusable image fails with BadImage (its
    ImageError code kept), which is stored and acked -- never retried. A message whose
    bucket, key or stem is not this request's own is refused before any S3 call
    (:mod:`tasks.arguments`).
    """
    worker = state()
    task_id = current_task_id()
    refuse_if(recognize_problem((bucket, key, request_id, stem), task_id=task_id,
                                input_bucket=worker.settings.input_bucket),
              "facefleet.recognize", task_id)
    log.info("request %s: recognizing s3://%s/%s", request_id, bucket, key)
    # Picks up enrolments and removals made since the last task (cheap, rate-limited).
    worker.recognizer.refresh_gallery()
    started = time.perf_counter()
    # The ticket is taken before the fetch: a batch about to start waits (briefly) for
    # this task's image instead of leaving without it (tasks.batching).
    with worker.batcher.ticket() as ticket:
        data = read_image(worker.objects, bucket, key)
        fetched = time.perf_counter()
        outcome = ticket.recognize(data)
    if isinstance(outcome.value, ImageError):
        raise BadImage(str(outcome.value), outcome.value.code)
    if isinstance(outcome.value, Exception):
        raise outcome.value
    recognition = outcome.value
    recognized = time.perf_counter()
    write_label(worker.objects, worker.settings.output_bucket, stem, recognition.label)
    result = recognition.to_dict()
    result["timings"].update(fetch=round(fetched - started, 4),
                             batch_wait=round(outcome.waited, 4),
                             store=round(time.perf_counter() - recognized, 4))
    result["batch"] = outcome.batch  # images recognised together with this one
    result.update(request_id=request_id, stem=stem, image={"bucket": bucket, "key": key})
    return result
