"""The recognizer end to end with real weights on the 5-celebrity set (no model mocks)."""

from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from config import aws
from config.settings import Settings
from recognition.detector import Detection
from recognition.errors import GalleryError, ImageError, NoFaceError
from recognition.gallery_store import GalleryStore
from recognition.pipeline import Recognizer, primary_index
from tests.recognition.conftest import Parts, write_gallery


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _gradient(width: int = 320, height: int = 240) -> bytes:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)),
                          np.broadcast_to(y, (height, width, 1)),
                          np.full((height, width, 1), 128, np.float32)], axis=2)
    return _jpeg(Image.fromarray(rgb.astype(np.uint8)))


def _val(celebrities: Path, name: str) -> list[Path]:
    return sorted((celebrities / "val" / name).iterdir())


@pytest.fixture(scope="module")
def full_gallery(tmp_path_factory: pytest.TempPathFactory, parts: Parts,
                 train_embeddings: dict) -> Path:
    """All five identities enrolled from their train photos."""
    return write_gallery(parts, tmp_path_factory.mktemp("g") / "all.json", train_embeddings)


@pytest.fixture(scope="module")
def recognizer(parts: Parts, full_gallery: Path) -> Recognizer:
    return parts.recognizer(full_gallery)


def test_enrolled_people_are_recognised(recognizer: Recognizer, celebrities: Path) -> None:
    paths = sorted((celebrities / "val").glob("*/*"))
    results = recognizer.recognize_many([p.read_bytes() for p in paths])
    labels = [r.label for r in results]  # type: ignore[union-attr]
    assert labels == [p.parent.name for p in paths]
    for result in results:
        assert result.faces and result.faces[0].distance is not None  # type: ignore[union-attr]
        assert set(result.timings) == {"decode", "detect", "embed", "match"}  # type: ignore


def test_unenrolled_person_is_unknown(parts: Parts, train_embeddings: dict, tmp_path: Path,
                                      celebrities: Path) -> None:
    gallery = write_gallery(parts, tmp_path / "no-madonna.json", train_embeddings,
                            skip=("madonna",))
    recognizer = parts.recognizer(gallery)
    for path in _val(celebrities, "madonna"):
        result = recognizer.recognize(path.read_bytes())
        assert result.label == "Unknown", path.name
        assert result.faces[0].distance is not None
        assert result.faces[0].distance > recognizer.threshold


def test_image_without_a_face_is_noface(recognizer: Recognizer) -> None:
    result = recognizer.recognize(_gradient())
    assert result.label == "NoFace" and result.faces == ()
    assert result.to_dict()["faces"] == []


def test_tiny_image_is_noface_not_a_crash(recognizer: Recognizer) -> None:
    assert recognizer.recognize(_jpeg(Image.new("RGB", (8, 8), "white"))).label == "NoFace"


def test_two_faces_side_by_side(recognizer: Recognizer, celebrities: Path) -> None:
    left = Image.open(_val(celebrities, "ben_afflek")[0]).convert("RGB")
    right = Image.open(_val(celebrities, "mindy_kaling")[0]).convert("RGB")
    height = max(left.height, right.height)
    canvas = Image.new("RGB", (left.width + right.width, height), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    result = recognizer.recognize(_jpeg(canvas))
    by_side = sorted(result.faces, key=lambda f: f.box[0])
    assert [f.identity for f in by_side] == ["ben_afflek", "mindy_kaling"]
    assert by_side[0].box[2] <= left.width <= by_side[1].box[0]
    assert result.label in {"ben_afflek", "mindy_kaling"}


def test_large_image_detected_on_a_downscaled_copy(recognizer: Recognizer,
                                                   celebrities: Path) -> None:
    face = Image.open(_val(celebrities, "elton_john")[0]).convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (90, 110, 90))
    canvas.paste(face.resize((face.width * 3, face.height * 3)), (2500, 1500))
    result = recognizer.recognize(_jpeg(canvas))
    assert result.label == "elton_john"
    x1, y1, _, _ = result.faces[0].box
    assert x1 > 2500 and y1 > 1500  # boxes are in full-resolution pixels


def _detail(crop: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (sharpness)."""
    grey = crop.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def test_face_of_the_documented_minimum_size_on_a_1920_px_photo(
        recognizer: Recognizer, celebrities: Path) -> None:
    """FACEFLEET_DETECT_MAX_SIDE's promise: a face of the documented minimum width is
    found on a 1920 px photo (detected on the 960 px copy), and the pipeline cuts its
    crop from the full-resolution image, not from that copy."""
    detector = recognizer.detector
    assert detector.max_side == Settings().detect_max_side == 960  # the shipped default
    size = (1920, 1440)
    smallest = detector.smallest_face(size)
    assert 56 < smallest < 57  # 28 px in the copy: MTCNN's 20 px / its pyramid step
    photo = Image.open(_val(celebrities, "jerry_seinfeld")[0]).convert("RGB")
    x1, y1, x2, y2 = detector.detect(photo)[0].box
    scale = smallest / (x2 - x1)
    small = photo.resize((math.ceil(photo.width * scale), math.ceil(photo.height * scale)))
    sx, sy = small.width / photo.width, small.height / photo.height
    canvas = Image.new("RGB", size, (90, 110, 90))
    canvas.paste(small, (1500, 1100))
    truth = (x1 * sx + 1500, y1 * sy + 1100, x2 * sx + 1500, y2 * sy + 1100)
    assert smallest <= truth[2] - truth[0] < smallest + 1

    seen: list[tuple[Image.Image, np.ndarray]] = []
    crops = detector.crops

    def recording(image: Image.Image, detections: list[Detection]) -> np.ndarray:
        seen.append((image, crops(image, detections)))
        return seen[-1][1]

    detector.crops = recording  # type: ignore[method-assign]
    try:
        result = recognizer.recognize_images([canvas])[0]
    finally:
        del detector.crops
    found = [i for i, f in enumerate(result.faces) if _iou(f.box, truth) >= 0.4]
    assert len(found) == 1, (result.faces, truth)
    face = result.faces[found[0]]
    assert face.probability >= detector.min_probability
    (image, cut), = seen
    assert image is canvas  # the full-resolution image, boxes in its pixels
    detection = Detection(face.box, face.probability, ())
    assert np.array_equal(cut[found[0]], detector.crop(canvas, detection))
    # The same box cut from the detection copy is visibly blurrier (half the pixels).
    copy, factor = detector._detection_copy(canvas)
    assert copy.size == (960, 720) and factor == 2.0
    a, b, c, d = (v / factor for v in face.box)
    from_copy = detector.crop(copy, Detection((a, b, c, d), face.probability, ()))
    assert _detail(cut[found[0]]) > 1.2 * _detail(from_copy)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def test_one_batch_for_all_faces_and_bad_images_in_place(recognizer: Recognizer,
                                                         celebrities: Path) -> None:
    calls: list[int] = []
    embed = recognizer.embedder.embed

    def counting(faces: np.ndarray) -> np.ndarray:
        calls.append(len(faces))
        return embed(faces)

    recognizer.embedder.embed = counting  # type: ignore[method-assign]
    try:
        datas = [p.read_bytes() for p in _val(celebrities, "jerry_seinfeld")[:3]]
        results = recognizer.recognize_many([datas[0], b"", datas[1], _gradient(), datas[2]])
    finally:
        del recognizer.embedder.embed
    assert isinstance(results[1], ImageError) and results[1].code == "empty"
    assert [getattr(r, "label", None) for r in results] == [
        "jerry_seinfeld", None, "jerry_seinfeld", "NoFace", "jerry_seinfeld"]
    assert len(calls) == 1 and calls[0] >= 3


def test_same_size_images_share_detector_passes(parts: Parts, celebrities: Path) -> None:
    detector = parts.detector
    paths = [p for name in ("jerry_seinfeld", "madonna", "mindy_kaling")
             for p in _val(celebrities, name)[:2]]
    # Four resized to 160 x 160 (one group of four), the rest at their own sizes.
    images = [Image.open(p).convert("RGB") for p in paths]
    images = [im.resize((160, 160)) for im in images[:4]] + images[4:]
    one_by_one = [detector.detect(im) for im in images]
    calls: list[int] = []
    detect = detector._mtcnn.detect

    def counting(image: object, landmarks: bool = False) -> object:
        calls.append(len(image) if isinstance(image, list) else 1)
        return detect(image, landmarks=landmarks)

    detector._mtcnn.detect = counting
    try:
        together = detector.detect_many(images)
    finally:
        del detector._mtcnn.detect
    groups = Counter(im.size for im in images)
    assert groups[(160, 160)] == 4 and sorted(calls) == sorted(groups.values())
    assert [len(found) for found in together] == [len(found) for found in one_by_one]
    for mine, alone in zip(together, one_by_one, strict=True):
        for a, b in zip(mine, alone, strict=True):
            assert np.allclose(a.box, b.box, atol=0.01)
            assert abs(a.probability - b.probability) < 1e-4


def test_bad_image_raises_image_error(recognizer: Recognizer) -> None:
    with pytest.raises(ImageError) as info:
        recognizer.recognize(b"GIF89a not really")
    assert info.value.code in {"not_an_image", "truncated"}


def test_embed_enrolment(recognizer: Recognizer, celebrities: Path) -> None:
    vector = recognizer.embed_enrolment(_val(celebrities, "madonna")[0].read_bytes())
    assert tuple(vector.shape) == (1, 128)
    assert float(vector.norm()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(NoFaceError):
        recognizer.embed_enrolment(_gradient())


def test_enrol_is_all_or_nothing_then_reloads(parts: Parts, tmp_path: Path,
                                              celebrities: Path) -> None:
    recognizer = parts.recognizer(tmp_path / "g.json")
    photos = [(p.read_bytes(), p.name) for p in _val(celebrities, "ben_afflek")[:2]]
    with pytest.raises(NoFaceError, match=r"gradient\.jpg"):
        recognizer.enroll("ben", [*photos, (_gradient(), "gradient.jpg")])
    with pytest.raises(ImageError, match=r"notes\.jpg"):
        recognizer.enroll("ben", [*photos, (b"just text\n", "notes.jpg")])
    with pytest.raises(GalleryError, match="invalid identity name"):
        recognizer.enroll("ben/../x", photos)
    assert recognizer.gallery_store.identities() == {}
    gallery = recognizer.enroll("ben", photos)
    assert gallery.counts() == {"ben": 2} and recognizer.gallery.version == 1
    probe = _val(celebrities, "ben_afflek")[3].read_bytes()
    assert recognizer.recognize(probe).label == "ben"


def test_refresh_sees_another_writer_and_is_rate_limited(
    parts: Parts, tmp_path: Path, celebrities: Path, train_embeddings: dict
) -> None:
    now = [0.0]
    recognizer = parts.recognizer(tmp_path / "g.json", check_interval=1.0,
                                  clock=lambda: now[0])
    probe = _val(celebrities, "mindy_kaling")[0].read_bytes()
    assert recognizer.recognize(probe).label == "Unknown"  # empty gallery
    other = GalleryStore(str(tmp_path / "g.json"), weights_name=parts.weights.name,
                         weights_sha256=parts.weights.sha256)
    other.enroll("mindy_kaling", *train_embeddings["mindy_kaling"])
    now[0] = 0.5
    assert recognizer.refresh_gallery() is False  # checked less than 1 s ago
    now[0] = 1.6
    assert recognizer.refresh_gallery() is True
    assert recognizer.refresh_gallery(force=True) is False  # unchanged since
    assert recognizer.recognize(probe).label == "mindy_kaling"


def test_threshold_decides_unknown(parts: Parts, full_gallery: Path, celebrities: Path) -> None:
    strict = parts.recognizer(full_gallery, threshold=0.05)
    result = strict.recognize(_val(celebrities, "elton_john")[0].read_bytes())
    assert result.label == "Unknown" and result.faces[0].distance is not None


def test_primary_face_prefers_the_largest_sure_face() -> None:
    from recognition.detector import Detection

    def det(p: float, size: float) -> Detection:
        return Detection((0, 0, size, size), p, ())

    assert primary_index([]) is None
    assert primary_index([det(0.9999, 40), det(0.998, 90)]) == 1
    assert primary_index([det(0.9999, 40), det(0.80, 90)]) == 0
    assert primary_index([det(0.73, 40), det(0.71, 90)]) == 0


def test_from_settings_with_the_gallery_on_s3(settings: object, celebrities: Path,
                                              train_embeddings: dict, parts: Parts) -> None:
    """The production path: gallery object on moto's S3, reloaded when its ETag changes."""
    from dataclasses import replace

    client = aws.s3_client(settings, "interactive")
    client.create_bucket(Bucket=settings.model_bucket)  # type: ignore[attr-defined]
    recognizer = Recognizer.from_settings(replace(settings, threshold=0.9),  # type: ignore
                                          s3_client=client)
    assert recognizer.threshold == 0.9  # FACEFLEET_THRESHOLD overrides the registry value
    assert recognizer.weights.sha256 == parts.weights.sha256
    probe = _val(celebrities, "jerry_seinfeld")[0].read_bytes()
    assert recognizer.recognize(probe).label == "Unknown"
    writer = GalleryStore.from_settings(settings, s3_client=client,
                                        weights_name=parts.weights.name,
                                        weights_sha256=parts.weights.sha256)
    writer.enroll("jerry_seinfeld", *train_embeddings["jerry_seinfeld"])
    assert recognizer.refresh_gallery(force=True) is True
    assert recognizer.recognize(probe).label == "jerry_seinfeld"
