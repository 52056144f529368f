"""Pure parts of the workload generator: inputs, outcome classification, statistics."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pytest

from bench.workload import (
    Outcome,
    WorkloadError,
    load_images,
    load_labels,
    percentile,
    summarize,
)


def test_load_images_from_zip_and_folder(tmp_path: Path) -> None:
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("face_images/test_1.jpg", b"b")
        z.writestr("face_images/test_0.jpg", b"a")
        z.writestr("face_images/readme.txt", b"skip me")
    assert load_images(archive) == [("test_0.jpg", b"a"), ("test_1.jpg", b"b")]
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "b.png").write_bytes(b"2")
    (folder / "a.JPG").write_bytes(b"1")
    (folder / "notes.txt").write_bytes(b"x")
    assert load_images(folder) == [("a.JPG", b"1"), ("b.png", b"2")]


@pytest.mark.parametrize("make", ["missing", "empty_dir", "not_zip"])
def test_load_images_errors(tmp_path: Path, make: str) -> None:
    path = tmp_path / "x"
    if make == "empty_dir":
        path.mkdir()
    elif make == "not_zip":
        path.write_bytes(b"plain")
    with pytest.raises(WorkloadError):
        load_images(path)


def test_load_labels(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("Image,Results\ntest_000,Paul\ntest_001.jpg,Emily\n")
    assert load_labels(good) == {"test_000": "Paul", "test_001": "Emily"}
    bad = tmp_path / "bad.csv"
    bad.write_text("name,label\na,b\n")
    with pytest.raises(WorkloadError, match="Image,Results"):
        load_labels(bad)


def test_outcome_classification() -> None:
    right = Outcome("test_000.jpg", 200, "test_000:Paul", 0.1, 1, "Paul")
    wrong = Outcome("test_000.jpg", 200, "test_000:Bob", 0.2, 1, "Paul")
    wrong_stem = Outcome("test_000.jpg", 200, "test_001:Paul", 0.2, 1, "Paul")
    failed = Outcome("test_000.jpg", 504, "Error 504: timed out", 30.0, 1, "Paul")
    lost = Outcome("test_000.jpg", None, "", 1.0, 6, "Paul", "ConnectionError")
    assert right.correct and right.label == "Paul"
    assert wrong.completed and not wrong.correct
    assert not wrong_stem.correct
    assert not failed.completed and failed.label is None
    summary = summarize([right, wrong, wrong_stem, failed, lost], duration=2.0)
    assert (summary["completed"], summary["failed"], summary["correct"], summary["wrong"]) == (
        3, 2, 1, 2)
    assert summary["retried"] == 1
    assert summary["throughput_rps"] == 1.5
    assert summary["latency_s"]["p50"] == pytest.approx(0.2)


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile(list(range(101)), 95) == 95
    assert math.isnan(percentile([], 50))
