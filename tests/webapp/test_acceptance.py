"""Acceptance on the embedded stack: the CSE546 workload (1000 requests, 100 concurrent
clients, reference protocol) with its ten distinct images enrolled under their labels.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bench.workload import load_images, load_labels, one_line, run_workload, summarize
from config import aws
from tests.webapp.stack import WebStack

REQUEST_KEY = re.compile(r"^[0-9a-f]{32}/(test_\d{3})\.jpg$")


@pytest.mark.slow
def test_cse546_1000_requests_at_100_clients(enrolled_stack: WebStack, cse546_dir: Path) -> None:
    settings = enrolled_stack.settings
    images = load_images(cse546_dir / "face_images_1000.zip")
    labels = load_labels(cse546_dir / "labels_1000.csv")
    assert len(images) == 1000

    outcomes, duration = run_workload(enrolled_stack.url + "/", images, labels, 1000, 100,
                                      timeout=180, progress=False)
    summary = summarize(outcomes, duration)
    print(one_line({**summary, "concurrency": 100}))  # shown with pytest -s / -rP
    failures = [(o.image, o.status, o.body[:120], o.error) for o in outcomes if not o.completed]
    assert summary["failed"] == 0, failures[:5]
    assert summary["correct"] == 1000, [(o.image, o.body) for o in outcomes if not o.correct][:5]

    s3 = aws.client(settings, "s3")
    stems = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.input_bucket):
        for obj in page.get("Contents", []):
            match = REQUEST_KEY.match(obj["Key"])
            if match:
                stems.append(match.group(1))
    assert len(stems) == 1000 and len(set(stems)) == 1000  # one object per request

    for stem in ("test_000", "test_457", "test_999"):
        body = s3.get_object(Bucket=settings.output_bucket, Key=stem)["Body"].read()
        assert body.decode().strip() == labels[stem]

    # The request queue drains back to empty once every answer is in.
    import requests

    deadline = time.monotonic() + 30
    while True:
        queue = requests.get(enrolled_stack.url + "/api/v1/fleet", timeout=30).json()["queue"]
        if (queue["visible"], queue["in_flight"]) == (0, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (queue["visible"], queue["in_flight"]) == (0, 0)
