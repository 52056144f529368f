"""bench.detection's pure parts: the threshold rule, what keep_best lists, the primary check."""

from __future__ import annotations

import pytest

from bench.detection import (
    Collected,
    Found,
    centred_in,
    choose_threshold,
    iou,
    listed,
    rates,
    wrong_primaries,
)
from recognition.pipeline import primary_index


def found(p: float, image: int = 0, kind: str = "false", size: float = 10.0,
          subject: bool = False) -> Found:
    return Found("photo", kind, p, image, (0.0, 0.0, size, size), subject=subject)


def test_threshold_is_a_step_below_the_weakest_true_face_with_the_margin() -> None:
    assert choose_threshold([0.99, 0.913, 1.0], 0.05, 0.05, 0.7, 0.95) == 0.85
    assert choose_threshold([0.99, 0.9], 0.05, 0.05, 0.7, 0.95) == 0.85  # exact step
    assert choose_threshold([0.99, 0.913], 0.05, 0.01, 0.7, 0.95) == 0.86


def test_threshold_is_clamped_between_the_stage_and_the_primary_cut() -> None:
    assert choose_threshold([0.72, 1.0], 0.05, 0.05, 0.7, 0.95) == 0.7
    assert choose_threshold([1.0, 1.0], 0.0, 0.05, 0.7, 0.95) == 0.95
    with pytest.raises(ValueError):
        choose_threshold([], 0.05, 0.05, 0.7, 0.95)


def test_allow_spares_the_weakest_observations_only() -> None:
    faces = [0.76, 0.883, *[0.99] * 498]  # 500 observations
    assert choose_threshold(faces, 0.05, 0.05, 0.7, 0.95) == 0.7
    assert choose_threshold(faces, 0.05, 0.05, 0.7, 0.95, allow=0.002) == 0.8
    assert choose_threshold(faces, 0.05, 0.05, 0.7, 0.95, allow=0.001) == 0.7
    assert choose_threshold([0.8], 0.05, 0.05, 0.7, 0.95, allow=1.0) == 0.75  # keeps one


def test_keep_best_lists_an_images_best_candidate_only_when_none_passes() -> None:
    items = [found(0.9, 0), found(0.75, 0), found(0.78, 1), found(0.72, 1), found(0.6, 2)]
    best = {0: 0.9, 1: 0.78, 2: 0.6}
    assert [f.probability for f in listed(items, 0.8, best, 0.7)] == [0.9, 0.78]
    assert [f.probability for f in listed(items, 0.7, best, 0.7)] == [0.9, 0.75, 0.78, 0.72]


def test_rates_split_false_detections_by_images_with_a_face() -> None:
    data = Collected(found=[found(0.99, 0, "face"), found(0.82, 0), found(0.75, 0),
                            found(0.75, 1), found(0.95, 2, "reviewed")],
                     best_of_image={0: 0.99, 1: 0.75, 2: 0.95}, face_images={0, 2})
    row = rates(data, [0.8], 0.7)[0]
    assert row["true_faces_kept"] == row["true_faces"] == 1
    assert row["reviewed_listed"] == 1
    assert row["false_listed_with_a_face"] == 1  # 0.82; 0.75 beside a face is dropped
    assert row["false_listed_without_a_face"] == 1  # keep_best in the faceless image
    assert row["false_listed_by_keep_best"] == 1


def test_wrong_primaries_names_a_false_detection_chosen_over_the_subject() -> None:
    data = Collected(found=[found(0.99, 0, "face", 10, True), found(0.97, 0, size=40),
                            found(0.99, 1, "face", 40, True), found(0.97, 1, size=10)],
                     best_of_image={0: 0.99, 1: 0.99}, one_photo_images={0, 1})
    wrong = wrong_primaries(data, 0.8, 0.7, primary_index)
    assert [(f.image, f.probability) for f in wrong] == [(0, 0.97)]  # the larger sure box
    assert wrong_primaries(data, 0.98, 0.7, primary_index) == []


def test_geometry() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert centred_in((8, 8, 12, 12), [(0, 0, 10, 10)])
    assert not centred_in((9, 9, 15, 15), [(0, 0, 10, 10)])
