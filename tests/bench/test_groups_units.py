"""bench.groups: composed group photos carry the right truth boxes, and matching counts
faces found and lost right (tiny canvases; one with the real detector)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.detection import iou
from bench.groups import (
    Group,
    Source,
    compose,
    crop_box,
    face_source,
    groups,
    load_sources,
    match,
    score,
    sweep_groups,
)
from config.settings import Settings
from recognition.detector import Detector
from recognition.pipeline import DEFAULT_MARGIN
from recognition.weights.sdist import celebrity_dataset

FACE = (30.0, 20.0, 70.0, 70.0)  # the red "face" of the synthetic source
RED = (255, 0, 0)


def _source(name: str = "red") -> Source:
    image = Image.new("RGB", (100, 130), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((30, 20, 69, 69), fill=RED)
    return Source(name, image, FACE)


def _red_box(canvas: Image.Image) -> tuple[float, float, float, float] | None:
    pixels = np.asarray(canvas).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    ys, xs = np.nonzero(red)
    if not len(xs):
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def test_each_truth_box_is_where_its_face_was_pasted() -> None:
    base = Image.new("RGB", (640, 480), (0, 200, 0))
    rng = np.random.default_rng(3)
    for width in (20.0, 47.3, 120.0):  # one face per canvas: its red area is its box
        group = compose([_source()], [width], base, rng)
        assert len(group.faces) == 1
        truth = group.faces[0]
        pasted = _red_box(group.image)
        assert pasted is not None and iou(truth, pasted) > 0.9, (truth, pasted)
        assert width <= truth[2] - truth[0] < width + 1  # never pasted smaller
    several = compose([_source("a"), _source("b")], [30.0, 60.0, 90.0, 45.0], base, rng,
                      in_turn=True)
    assert several.names == ["a", "b", "a", "b"]
    for i, a in enumerate(several.faces):
        assert min(a) >= 0 and a[2] <= 640 and a[3] <= 480
        assert all(iou(a, b) == 0 for b in several.faces[i + 1:])  # apart


def test_a_face_that_finds_no_place_is_left_out() -> None:
    group = compose([_source()], [400.0, 40.0], Image.new("RGB", (200, 200)),
                    np.random.default_rng(0))
    assert len(group.faces) == 1  # 400 px needs a 1000 x 1300 crop: it does not fit


def test_crops_holding_another_known_face_are_skipped() -> None:
    image = Image.new("RGB", (300, 300))
    face = (100.0, 100.0, 140.0, 150.0)
    assert crop_box(face, image.size) == (80, 80, 160, 190)
    source = face_source("p", image, face, [(200.0, 100.0, 240.0, 150.0)])
    assert source is not None and source.face == (20.0, 20.0, 60.0, 70.0)
    assert face_source("p", image, face, [(150.0, 90.0, 190.0, 140.0)]) is None


def test_match_pairs_each_face_with_at_most_one_detection() -> None:
    truth = [(0.0, 0.0, 10.0, 10.0), (20.0, 0.0, 30.0, 10.0), (50.0, 50.0, 60.0, 60.0)]
    boxes = [(21.0, 0.0, 31.0, 10.0), (0.0, 0.0, 10.0, 11.0), (1.0, 1.0, 10.0, 10.0),
             (56.0, 56.0, 66.0, 66.0)]
    # The third truth overlaps its only candidate with IoU 16/184: not found.
    assert match(truth, boxes) == [1, 0, None]
    assert match(truth[:1], boxes[1:3]) == [0]  # the better of two, once
    assert match(truth, []) == [None, None, None]


def test_score_counts_lost_against_the_truth_and_the_full_size_detector() -> None:
    faces = [(0.0, 0.0, 30.0, 30.0), (100.0, 0.0, 160.0, 60.0), (200.0, 0.0, 280.0, 80.0)]
    group = Group(None, faces=faces, names=["a", "b", "c"], band=(30.0, 80.0))
    found = [[faces[2], (400.0, 400.0, 420.0, 420.0)]]  # finds c, and one non-face
    full = [[faces[0], faces[1]]]  # finds a and b
    result = score([group], found, full, smallest=50.0)
    assert result["faces"] == 3 and result["found"] == 1 and result["other_detections"] == 1
    assert result["lost"] == [30.0, 60.0]
    assert result["lost_vs_full"] == [30.0, 60.0]
    assert result["lost_vs_full_at_or_above_min"] == [60.0]
    assert result["gained_vs_full"] == [80.0]
    assert result["found_by_band"] == {"30-80": "1/3"}


@pytest.fixture(scope="module")
def real_sources() -> tuple[list[Source], list[Image.Image]]:
    """Sources and background tiles from a few 5-celebrity val photos."""
    paths = sorted((celebrity_dataset(Settings.from_env().cache_dir) / "val").glob("*/*"))
    sources, tiles, _ = load_sources(Detector(margin=DEFAULT_MARGIN), paths[::5])
    return sources, tiles


def test_composed_faces_are_found_where_the_truth_says(
        real_sources: tuple[list[Source], list[Image.Image]]) -> None:
    sources, tiles = real_sources
    assert len(sources) >= 4 and tiles
    detector = Detector(margin=DEFAULT_MARGIN, max_side=1 << 20)  # the full-size one
    canvases = groups(sources, tiles, 1, seed=0, bands=((70, 140, 4),), size=(800, 600))
    canvases += sweep_groups(sources[:4], tiles, [90.0], seed=1, size=(800, 600))
    assert len(canvases) == 2
    assert [len(g.faces) for g in canvases] == [4, 4]
    boxes = [[d.box for d in detector.detect(g.image)] for g in canvases]
    for group, found in zip(canvases, boxes, strict=True):
        pairs = match(group.faces, found)
        assert None not in pairs, (group.faces, found)
        for truth, index in zip(group.faces, pairs, strict=True):
            assert index is not None and iou(truth, found[index]) > 0.6
    result = score(canvases, boxes, boxes, smallest=0.0)
    assert result["found"] == result["faces"] == 8 and not result["lost"]

