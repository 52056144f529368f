"""Detection probability of true faces and of false detections: the reporting threshold.

    python -m bench.detection [--margin 0.05] [--allow 0.002] [--step 0.01]

MTCNN's last stage passes anything it scores at probability ≥ 0.7, and hands, arms, a
bow tie or a second box half on a face get there. ``REPORT_MIN_PROBABILITY`` in
config/settings.py (``FACEFLEET_MIN_FACE_PROBABILITY``) decides which detections are
listed; this benchmark measures
both distributions and derives that value.

How it detects: as production does (``Detector``'s P-Net and R-Net thresholds, image
size, downscaling of large images) but with the last stage's threshold and
``min_probability`` at 0, so every candidate that reaches the last stage comes back
with the probability production compares with its cut — the part below 0.7 included.

True faces, which the threshold must keep:

* the primary face (``recognition.pipeline.primary_index``) of each 5-celebrity photo
  (train and val), in eight contexts: the photo itself; mirrored; resized 0.75x, 1x,
  1.5x and 2.5x and saved as JPEG (an upload's size and compression are arbitrary, and
  MTCNN's probability for one face moves with them); pasted with other photos side by
  side into 2000 px group composites at 1x and 2x, saved as JPEG (the upload page's
  group photo; MTCNN sees the ``FACEFLEET_DETECT_MAX_SIDE`` downscale, 960 px). Outside
  its own photo the face is the most probable detection overlapping its box
  (IoU ≥ 0.4); none there counts as missed. A composite's face narrower than the
  detector's documented minimum face for its size (``Detector.smallest_face``: 59 px
  in 2000 px at 960) is reviewed instead (below);
* the face of each CSE546 reference crop (the reference workload: 1000 files, ten
  distinct images), its most probable detection.

Reviewed faces (``REVIEWED``, checked by eye on the review sheet): bystanders in the
celebrity photos (some found only when enlarged), a face printed on a T-shirt, one
primary face mostly hidden by hair and a gloved hand, and primary faces too small in a
group composite (above; the service does not promise them). They are real faces but not
required: a weak bystander may go unlisted. The hidden face is its photo's subject;
``Detector`` keeps an image's best detection when none reaches the cut (``keep_best``),
and that is what keeps it when it is alone.

False detections: every detection not on a true or reviewed face —

* in the contexts above: hands, arms, clothes, leaves, hair, and second boxes on a
  face (offset duplicates, a chin; sources marked "on a face");
* in the celebrity photos with every known face filled with the photo's median colour
  (box plus 40 % on each side, so no chin or forehead is left), rotated by 90, 180 and
  270 degrees (hands and clothes at new angles; photos without EXIF do arrive
  sideways), and in three random half-size crops of each enlarged 3x (background at
  the scale of a face): images without any face;
* in synthetic textures: white and blurred noise, random ellipses and rectangles.

The choice: the largest multiple of ``--step`` at or below the weakest true face it must
keep minus ``--margin``, between MTCNN's last stage and the pipeline's
``PRIMARY_MIN_PROBABILITY`` (at or below it, the cut never changes which face is a
photo's primary one). ``--allow`` is the share of true-face observations that may fall
below it: a few hard faces score near 0.7 at some size and compression, and keeping
every one of them would mean no cut above MTCNN's own. The cut that keeps every one is
reported too, and so is the spread of one face's probability across its contexts.

For each candidate threshold it reports the true faces kept, the reviewed faces listed
and the false detections listed, per source and split between images with a face and
images without one (where ``keep_best`` still lists the best candidate that passed
MTCNN's last stage), and whether the pipeline's primary-face rule picks a false
detection over a photo's subject. Writes ``results/detection.json``,
``results/detection.png`` (distributions; kept and listed against the threshold) and
``results/detection_review.png`` (every false detection at ≥ 0.7 and every reviewed
face, to check the labels by eye). Exit status 0 when the shipped
``REPORT_MIN_PROBABILITY`` is at or below the derived value, no true face is missed in
any context and every CSE546 image yields a face.
"""

from __future__ import annotations

import argparse
import inspect
import io
import math
import random
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from tqdm import tqdm

from bench.common import RESULTS_DIR, new_figure, percentile, save_figure, summary, write_json
from config.settings import Settings
from recognition.detector import Detector
from recognition.images import decode_image
from recognition.pipeline import DEFAULT_MARGIN, PRIMARY_MIN_PROBABILITY, primary_index
from recognition.weights.sdist import celebrity_dataset

Box = tuple[float, float, float, float]

#: Thresholds in the table (below 0.7, as if MTCNN's last stage were lowered with it).
CANDIDATES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)
#: IoU above which a detection in another context is the same face.
SAME_FACE_IOU = 0.4
#: Fill margin around a known face when masking it, as a fraction of its box per side.
MASK_MARGIN = 0.4
#: Group composites: canvas size, scales and the gap between photos (pixels).
CANVAS = (2000, 1400)
GROUP_SCALES = (1.0, 2.0)
GROUP_GAP = 10
#: Rescaled copies of each photo (JPEG at UPLOAD_QUALITY, like the group composites).
RESCALES = (0.75, 1.0, 1.5, 2.5)
UPLOAD_QUALITY = 85
#: Background crops per masked photo (half the photo's size, enlarged this much).
CROPS_PER_PHOTO = 3
CROP_ENLARGE = 3
TEXTURES = 60
MAX_PIXELS = 40_000_000
CSE546_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cse546"

#: Reviewed by eye (the review sheet): photo file name → boxes (x1, y1, x2, y2) in the
#: photo of real faces other than its primary one, and ``hidden`` for a primary face
#: that is mostly covered. A detection whose centre lies in such a box is that face.
REVIEWED: dict[str, dict[str, Any]] = {
    # Elton John and a woman cheek to cheek.
    "httpssmediacacheakpinimgcomxfcfcbaeaeddabbjpg.jpg": {"faces": [(2, 46, 71, 144)]},
    # Jerry Seinfeld, Julia Louis-Dreyfus and a man in a cap behind them.
    "httpwwweonlinecomresizewwweonlinecomeolimagesEntireSitersxjerryseinfeld"
    "julialouisdreyfusjwjpg.jpg": {
        "faces": [(192, 70, 220, 110), (74, 24, 110, 76), (235, 50, 252, 73)]},
    # Two small faces at the edges of a stage.
    "httpcdncdnjustjaredcomwpcontentuploadsheadlinesjerryseinfeldmakesbrianwilliams"
    "jokejpg.jpg": {"faces": [(0, 46, 18, 72), (281, 101, 299, 126)]},
    # A woman cut by the right edge: weak in the photo, up to ~0.99 in a composite.
    "httpsuploadwikimediaorgwikipediacommonsthumbbJerrySeinfeldjpgpxJerrySeinfeldjpg.jpg": {
        "faces": [(195, 117, 220, 160)]},
    # A face printed on Madonna's T-shirt: found only in composites.
    "httpcdncdnjustjaredcomwpcontentuploadsheadlinesmadonnatalksparisattackstearsjpg.jpg": {
        "faces": [(114, 242, 184, 329)]},
    # Elton John and a man in a hat and sunglasses turned away from the camera.
    "httpimggalpmdstaticnetfithttpAFFwwwEgalaEfrFvarFgalFstorageFimagesFmediaFmulti"
    "uploaddufevrierFeltonjohnFfreFRFeltonjohnEjpgxqualityeltonjohnjpg.jpg": {
        "faces": [(225, 90, 315, 190)]},
    # Madonna, hair over one eye and a gloved hand at her mouth; two men behind her.
    "httpssvagalumecommadonnaimagesmadonnajpg.jpg": {
        "faces": [(171, 70, 188, 91), (58, 12, 82, 44)], "hidden": True},
}


@dataclass(frozen=True)
class Found:
    """One detection: ``kind`` is ``face`` (true), ``reviewed`` or ``false``."""

    source: str
    kind: str
    probability: float
    image: int  # index of the image it was found in (for keep_best)
    box: Box
    photo: str = ""  # the celebrity photo it lies in, when there is one
    in_photo: Box | None = None  # its box in that photo's own pixels (group composites)
    subject: bool = False  # the photo's primary face (true, or reviewed when hidden)

    @property
    def area(self) -> float:
        """Box area (what ``primary_index`` compares)."""
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass
class Collected:
    """Every detection of a run, plus per-image facts keep_best needs."""

    found: list[Found] = field(default_factory=list)
    best_of_image: dict[int, float] = field(default_factory=dict)
    face_images: set[int] = field(default_factory=set)  # images holding any real face
    one_photo_images: set[int] = field(default_factory=set)  # one celebrity photo each
    missed: list[str] = field(default_factory=list)  # true faces not detected at all
    drops: list[float] = field(default_factory=list)  # own photo − other context
    cse546_files: int = 0
    cse546_with_face: int = 0
    thumbnails: list[tuple[Found, Any]] = field(default_factory=list)


# -- pure logic ---------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centred_in(box: Box, faces: Iterable[Box]) -> bool:
    """Whether the centre of ``box`` lies in one of ``faces`` (edges included)."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(f[0] <= x <= f[2] and f[1] <= y <= f[3] for f in faces)


def choose_threshold(true_probabilities: Sequence[float], margin: float, step: float,
                     low: float, high: float, allow: float = 0.0) -> float:
    """The largest multiple of ``step`` at or below ``margin`` under the weakest true face
    it must keep, clamped to [low, high]. The ``floor(allow * n)`` weakest of the n true
    faces may fall below it (``allow`` 0: every one is kept)."""
    if not true_probabilities:
        raise ValueError("no true faces to choose a threshold from")
    ordered = sorted(true_probabilities)
    spared = min(math.floor(allow * len(ordered) + 1e-9), len(ordered) - 1)
    steps = math.floor((ordered[spared] - margin) / step + 1e-9)
    return round(min(max(steps * step, low), high), 6)


def listed(found: Sequence[Found], threshold: float, best_of_image: dict[int, float],
           stage: float) -> list[Found]:
    """What ``Detector`` lists at ``threshold`` with keep_best: every detection at or
    above it, and an image's best detection (if it passed ``stage``) when none does."""
    out = []
    for item in found:
        best = best_of_image.get(item.image, 0.0)
        if item.probability >= threshold or (
                best < threshold and item.probability == best and best >= stage):
            out.append(item)
    return out


def wrong_primaries(collected: Collected, threshold: float, stage: float,
                    primary: Callable[[Sequence[Any]], int | None]) -> list[Found]:
    """In images showing one celebrity photo (its subject detected), the listed
    detections that ``primary`` (the pipeline's rule) picks instead of the subject."""
    by_image: dict[int, list[Found]] = {}
    for item in collected.found:
        if item.image in collected.one_photo_images:
            by_image.setdefault(item.image, []).append(item)
    wrong = []
    for items in by_image.values():
        if not any(item.subject for item in items):
            continue
        shown = sorted(listed(items, threshold, collected.best_of_image, stage),
                       key=lambda item: -item.probability)
        chosen = primary(shown)
        if chosen is not None and not shown[chosen].subject:
            wrong.append(shown[chosen])
    return wrong


def rates(collected: Collected, thresholds: Iterable[float], stage: float
          ) -> list[dict[str, Any]]:
    """Per threshold: true faces kept by the cut alone, reviewed faces and false
    detections listed with keep_best (false ones per source, and split between images
    with a real face in them and images without)."""
    faces = [f for f in collected.found if f.kind == "face"]
    rows = []
    for t in thresholds:
        shown = listed(collected.found, t, collected.best_of_image, stage)
        false = [f for f in shown if f.kind == "false"]
        by_source: dict[str, int] = {}
        for f in false:
            by_source[f.source] = by_source.get(f.source, 0) + 1
        rows.append({
            "threshold": t,
            "true_faces_kept": sum(f.probability >= t for f in faces),
            "true_faces": len(faces),
            "reviewed_listed": sum(f.kind == "reviewed" for f in shown),
            "false_listed": len(false),
            "false_listed_by_keep_best": sum(f.probability < t for f in false),
            "false_listed_with_a_face": sum(f.image in collected.face_images for f in false),
            "false_listed_without_a_face": sum(
                f.image not in collected.face_images for f in false),
            "false_by_source": by_source,
        })
    return rows


# -- data ---------------------------------------------------------------------------


def _images_of_cse546(folder: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(folder / "face_images_1000.zip") as archive:
        return [(name, archive.read(name)) for name in sorted(archive.namelist())
                if name.lower().endswith(".jpg")]


def _median_colour(image: Any) -> tuple[int, int, int]:
    pixels = np.asarray(image).reshape(-1, 3)
    r, g, b = (int(v) for v in np.median(pixels, axis=0))
    return r, g, b


def _textures(count: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = i % 6
        if kind <= 3:  # white noise, then blurred at three radii
            noise = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
            image = noise if kind == 0 else ImageOps.autocontrast(
                noise.filter(ImageFilter.GaussianBlur((2, 4, 8)[kind - 1])))
        else:  # random ellipses (face-sized blobs) or rectangles on a flat colour
            image = Image.new("RGB", (256, 256), tuple(int(v) for v in rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(image)
            for _ in range(12 if kind == 4 else 30):
                x, y = (int(v) for v in rng.integers(0, 256, 2))
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                if kind == 4:
                    r = int(rng.integers(5, 40))
                    draw.ellipse((x - r, y - 1.3 * r, x + r, y + 1.3 * r), fill=colour)
                else:
                    w, h = (int(v) for v in rng.integers(5, 80, 2))
                    draw.rectangle((x, y, x + w, y + h), fill=colour)
        out.append(image)
    return out


class Run:
    """Detects every image once and classifies what it finds."""

    def __init__(self, detector: Any, progress: Any, thumbnails: bool = True) -> None:
        self.detector = detector
        self.progress = progress
        self.data = Collected()
        self.images = 0
        self.keep_thumbnails = thumbnails

    def detect(self, image: Any) -> tuple[int, list[Any]]:
        """Detect one image; returns its index and detections."""
        index = self.images
        self.images += 1
        found = self.detector.detect(image)
        if found:
            self.data.best_of_image[index] = max(d.probability for d in found)
        self.progress.update(1)
        return index, found

    def add(self, source: str, kind: str, index: int, detection: Any, image: Any,
            photo: str = "", in_photo: Box | None = None, subject: bool = False) -> None:
        """Record one classified detection (and a thumbnail for the review sheet)."""
        item = Found(source, kind, detection.probability, index, detection.box, photo,
                     in_photo, subject)
        self.data.found.append(item)
        if kind != "false":
            self.data.face_images.add(index)
        if self.keep_thumbnails and (kind == "reviewed" or (
                kind == "false" and detection.probability >= 0.7)):
            self.data.thumbnails.append((item, _thumbnail(image, detection.box)))


def _thumbnail(image: Any, box: Box, size: int = 160) -> Any:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    return image.crop((x1 - w / 2, y1 - h / 2, x2 + w / 2, y2 + h / 2)).resize(
        (size, size), Image.Resampling.BILINEAR)


def _match(detections: Sequence[Any], box: Box) -> int | None:
    """Index of the most probable detection overlapping ``box`` enough, else None."""
    matches = [i for i, d in enumerate(detections) if iou(d.box, box) >= SAME_FACE_IOU]
    return max(matches, key=lambda i: detections[i].probability) if matches else None


def _transform(box: Box, scale: float, dx: float, dy: float) -> Box:
    return (box[0] * scale + dx, box[1] * scale + dy, box[2] * scale + dx, box[3] * scale + dy)


@dataclass
class PhotoFaces:
    """A celebrity photo, its primary face box and its reviewed faces' boxes."""

    path: Path
    image: Any
    primary: Box
    primary_probability: float
    hidden: bool
    others: list[Box]


def reviewed_faces(found: Sequence[Any], others: Sequence[Box], skip: int | None) -> set[int]:
    """Indices of the detections that are reviewed faces: for each box of ``others``,
    the most probable detection (but ``skip``) centred in it."""
    out = set()
    for box in others:
        inside = [i for i, d in enumerate(found) if i != skip and centred_in(d.box, [box])]
        if inside:
            out.add(max(inside, key=lambda i: found[i].probability))
    return out


def _classify(run: Run, source: str, index: int, found: Sequence[Any], image: Any,
              photo: str, hidden: bool, face: int | None, others: Sequence[Box],
              rest: bool = True) -> set[int]:
    """Record the true face (``face``; reviewed when ``hidden``), the reviewed faces and,
    when ``rest``, every other detection as false. Returns the indices recorded."""
    used = set()
    if rest:
        run.data.one_photo_images.add(index)
    if face is not None:
        run.add(source, "reviewed" if hidden else "face", index, found[face], image, photo,
                subject=True)
        used.add(face)
    for i in reviewed_faces(found, others, face):
        run.add(source, "reviewed", index, found[i], image, photo)
        used.add(i)
    if rest:
        on_face = [found[face].box] if face is not None else []
        for i, d in enumerate(found):
            if i not in used:
                near = any(iou(d.box, f) > 0 for f in [*on_face, *others])
                run.add(f"{source} (on a face)" if near else source, "false", index, d,
                        image, photo)
    return used


def run_photos(run: Run, paths: Sequence[Path]) -> list[PhotoFaces]:
    """The photos themselves: primary face, reviewed faces, everything else false."""
    photos = []
    for path in paths:
        image = decode_image(path.read_bytes(), MAX_PIXELS)  # as the service decodes
        index, found = run.detect(image)
        primary = primary_index(found)
        if primary is None:
            raise SystemExit(f"no face detected in {path}")
        review = REVIEWED.get(path.name, {})
        others: list[Box] = [(float(x1), float(y1), float(x2), float(y2))
                             for x1, y1, x2, y2 in review.get("faces", [])]
        hidden = bool(review.get("hidden"))
        _classify(run, "photo", index, found, image, path.name, hidden, primary, others)
        photos.append(PhotoFaces(path, image, found[primary].box,
                                 found[primary].probability, hidden, others))
    return photos


def _in_context(run: Run, source: str, found: Sequence[Any], photo: PhotoFaces,
                face: Box, required: bool = True) -> int | None:
    """The true face of ``photo`` among ``found`` (seen elsewhere); notes misses and drops
    of a face that is ``required`` (and not hidden)."""
    match = _match(found, face)
    if photo.hidden or not required:
        return match
    if match is None:
        run.data.missed.append(f"{source}: {photo.path.name}")
    else:
        run.data.drops.append(photo.primary_probability - found[match].probability)
    return match


def run_mirrored(run: Run, photos: Sequence[PhotoFaces]) -> None:
    """Each photo mirrored: the primary face must be found again."""
    for photo in photos:
        image = ImageOps.mirror(photo.image)
        w = image.width
        x1, y1, x2, y2 = photo.primary
        index, found = run.detect(image)
        match = _in_context(run, "mirrored", found, photo, (w - x2, y1, w - x1, y2))
        others = [(w - b[2], b[1], w - b[0], b[3]) for b in photo.others]
        _classify(run, "mirrored", index, found, image, photo.path.name, photo.hidden,
                  match, others)


def _jpeg(image: Any, quality: int = UPLOAD_QUALITY) -> Any:
    """``image`` after a round trip through JPEG, as an uploaded photo would arrive."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return decoded.convert("RGB")


def run_rescaled(run: Run, photos: Sequence[PhotoFaces]) -> None:
    """Each photo resized by each of RESCALES and saved as JPEG: the face must stay."""
    for scale in RESCALES:
        source = f"rescaled {scale:g}x"
        for photo in photos:
            size = (round(photo.image.width * scale), round(photo.image.height * scale))
            image = _jpeg(photo.image.resize(size, Image.Resampling.BILINEAR))
            index, found = run.detect(image)
            match = _in_context(run, source, found, photo,
                                _transform(photo.primary, scale, 0, 0))
            others = [_transform(b, scale, 0, 0) for b in photo.others]
            _classify(run, source, index, found, image, photo.path.name, photo.hidden, match,
                      others)


def pack(photos: Sequence[PhotoFaces], scale: float
         ) -> list[list[tuple[PhotoFaces, int, int]]]:
    """Shelf-pack the photos, scaled, onto CANVAS-sized canvases: (photo, x, y) each."""
    width, height = CANVAS
    canvases: list[list[tuple[PhotoFaces, int, int]]] = [[]]
    x = y = row = 0
    for photo in photos:
        w, h = round(photo.image.width * scale), round(photo.image.height * scale)
        if x + w > width:
            x, y, row = 0, y + row, 0
        if y + h > height:
            canvases.append([])
            x = y = row = 0
        canvases[-1].append((photo, x, y))
        x, row = x + w + GROUP_GAP, max(row, h + GROUP_GAP)
    return [c for c in canvases if c]


def run_groups(run: Run, layouts: dict[float, list[list[tuple[PhotoFaces, int, int]]]]
               ) -> None:
    """Photos pasted side by side on 2000 px canvases (see :func:`pack`), per scale."""
    for scale, canvases in layouts.items():
        source = f"group {scale:g}x"
        for placed in canvases:
            canvas = Image.new("RGB", CANVAS, (120, 120, 120))
            for photo, x, y in placed:
                size = (round(photo.image.width * scale), round(photo.image.height * scale))
                canvas.paste(photo.image.resize(size, Image.Resampling.BILINEAR), (x, y))
            canvas = _jpeg(canvas)
            index, found = run.detect(canvas)
            used: set[int] = set()
            smallest = run.detector.smallest_face(canvas.size)
            for photo, dx, dy in placed:
                face = _transform(photo.primary, scale, dx, dy)
                # A face under the detector's documented minimum for this image size
                # (FACEFLEET_DETECT_MAX_SIDE) is real but not required: reviewed.
                required = face[2] - face[0] >= smallest
                match = _in_context(run, source, found, photo, face, required)
                others = [_transform(b, scale, dx, dy) for b in photo.others]
                used |= _classify(run, source, index, found, canvas, photo.path.name,
                                  photo.hidden or not required, match, others, rest=False)
            for i, d in enumerate(found):
                if i not in used:
                    cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
                    under = [(p.path.name, _transform(d.box, 1 / scale, -dx / scale,
                                                      -dy / scale))
                             for p, dx, dy in placed
                             if dx <= cx < dx + p.image.width * scale
                             and dy <= cy < dy + p.image.height * scale]
                    run.add(source, "false", index, d, canvas,
                            *(under[0] if under else ("", None)))


def masked(photo: PhotoFaces) -> Any:
    """The photo with its primary and reviewed faces filled with its median colour."""
    image = photo.image.copy()
    draw = ImageDraw.Draw(image)
    colour = _median_colour(photo.image)
    for x1, y1, x2, y2 in [photo.primary, *photo.others]:
        mx, my = MASK_MARGIN * (x2 - x1), MASK_MARGIN * (y2 - y1)
        draw.rectangle((x1 - mx, y1 - my, x2 + mx, y2 + my), fill=colour)
    return image


def run_negatives(run: Run, photos: Sequence[PhotoFaces], seed: int) -> None:
    """Images without faces: masked photos rotated and cropped, synthetic textures."""
    rng = random.Random(seed)
    for photo in photos:
        base = masked(photo)
        for angle in (90, 180, 270):
            image = base.rotate(angle, expand=True)
            index, found = run.detect(image)
            for d in found:
                run.add("masked, rotated", "false", index, d, image, photo.path.name)
        for _ in range(CROPS_PER_PHOTO):
            w, h = base.width // 2, base.height // 2
            x, y = rng.randrange(base.width - w + 1), rng.randrange(base.height - h + 1)
            image = base.crop((x, y, x + w, y + h)).resize(
                (w * CROP_ENLARGE, h * CROP_ENLARGE), Image.Resampling.BICUBIC)
            index, found = run.detect(image)
            for d in found:
                run.add("masked, crop 3x", "false", index, d, image, photo.path.name)
    for image in _textures(TEXTURES, seed):
        index, found = run.detect(image)
        for d in found:
            run.add("texture", "false", index, d, image)


def run_cse546(run: Run, files: Sequence[tuple[str, bytes]]) -> None:
    """Each CSE546 crop: its most probable detection is the face (distinct bytes once)."""
    seen: dict[bytes, bool] = {}
    for _, data in files:
        if data not in seen:
            image = decode_image(data, MAX_PIXELS)
            index, found = run.detect(image)
            seen[data] = bool(found)
            for i, d in enumerate(found):
                run.add("cse546", "face" if i == 0 else "false", index, d, image)
            if not found:
                run.data.missed.append("cse546: a crop")
        run.data.cse546_files += 1
        run.data.cse546_with_face += seen[data]


# -- report -------------------------------------------------------------------------


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """Count, min, percentiles and max of probabilities."""
    return {"count": len(values), "min": min(values) if values else math.nan,
            "p1": percentile(values, 1), "p5": percentile(values, 5),
            "p50": percentile(values, 50), "max": max(values) if values else math.nan}


def plot(collected: Collected, table: Sequence[dict[str, Any]], chosen: float,
         shipped: float, stage: float) -> Path:
    """Probability histograms (log counts) and kept / listed rates against the cut."""
    fig, axes = new_figure(1, 2)
    ax = axes[0][0]
    bins = np.linspace(0.0, 1.0, 51)
    for kind, colour, label in (("face", "tab:green", "true faces"),
                                ("reviewed", "tab:olive", "reviewed faces"),
                                ("false", "tab:red", "false detections")):
        values = [f.probability for f in collected.found if f.kind == kind]
        ax.hist(values, bins=bins, alpha=0.55, color=colour, label=f"{label} ({len(values)})")
    ax.axvline(stage, color="grey", ls=":", label=f"MTCNN last stage {stage:g}")
    ax.axvline(chosen, color="k", ls="--", label=f"derived {chosen:g}")
    if shipped != chosen:
        ax.axvline(shipped, color="tab:blue", ls="-.", label=f"shipped {shipped:g}")
    ax.set(xlabel="MTCNN probability", ylabel="detections", yscale="log",
           title="Detection probability")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[0][1]
    ts = [row["threshold"] for row in table]
    faces = [100 * row["true_faces_kept"] / row["true_faces"] for row in table]
    ax.plot(ts, faces, "o-", color="tab:green", label="true faces kept (%)")
    ax.set(xlabel="threshold", ylabel="true faces kept (%)", ylim=(0, 101),
           title="Kept and listed against the threshold")
    other = ax.twinx()
    other.plot(ts, [row["false_listed_with_a_face"] for row in table], "s-",
               color="tab:red", label="false listed, images with a face")
    other.plot(ts, [row["false_listed_without_a_face"] for row in table], "s:",
               color="tab:red", label="false listed, images without (keep_best)")
    other.plot(ts, [row["reviewed_listed"] for row in table], "^-", color="tab:olive",
               label="reviewed faces listed")
    other.set(ylabel="detections listed")
    ax.axvline(chosen, color="k", ls="--")
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left", fontsize=8)
    return save_figure(fig, "detection")


def review_sheet(collected: Collected, columns: int = 10) -> Path | None:
    """Every false detection ≥ 0.7 and every reviewed face, most probable first."""
    items = sorted(collected.thumbnails, key=lambda t: -t[0].probability)
    if not items:
        return None
    size = items[0][1].width
    rows = math.ceil(len(items) / columns)
    sheet = Image.new("RGB", (columns * size, rows * size), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, (item, thumb) in enumerate(items):
        x, y = (n % columns) * size, (n // columns) * size
        sheet.paste(thumb, (x, y))
        colour = (255, 60, 60) if item.kind == "false" else (255, 220, 0)
        q = size // 4
        draw.rectangle((x + q, y + q, x + size - q, y + size - q), outline=colour)
        draw.text((x + 3, y + 2), f"{item.probability:.3f} {item.kind}", fill=colour)
        draw.text((x + 3, y + size - 12), item.source, fill=colour)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "detection_review.png"
    sheet.save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 when the shipped threshold keeps every true face."""
    parser = argparse.ArgumentParser(prog="python -m bench.detection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margin", type=float, default=0.05,
                        help="probability kept below the weakest true face (default 0.05)")
    parser.add_argument("--allow", type=float, default=0.002,
                        help="share of true-face observations that may fall below the "
                             "threshold (default 0.002: 1 in 500)")
    parser.add_argument("--step", type=float, default=0.01,
                        help="the threshold is a multiple of this (default 0.01)")
    parser.add_argument("--seed", type=int, default=0, help="crops and textures (default 0)")
    parser.add_argument("--cse546", type=Path, default=CSE546_DIR,
                        help="the CSE546 reference data (default ../shared/data/cse546)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    torch.set_num_threads(settings.torch_threads)
    stages = tuple(inspect.signature(Detector).parameters["thresholds"].default)
    stage = float(stages[-1])
    shipped = settings.min_face_probability
    detector = Detector(margin=DEFAULT_MARGIN, thresholds=(*stages[:-1], 0.0),
                        min_probability=0.0, max_side=settings.detect_max_side)
    data_root = celebrity_dataset(settings.cache_dir)
    paths = sorted(p for p in data_root.glob("*/*/*") if p.is_file())
    cse_files = _images_of_cse546(args.cse546)
    distinct = len({data for _, data in cse_files})
    with tqdm(total=len(paths), desc="detect", file=sys.stderr, disable=None,
              leave=False) as bar:
        run = Run(detector, bar)
        photos = run_photos(run, paths)
        layouts = {scale: pack(photos, scale) for scale in GROUP_SCALES}
        bar.total = (bar.total or 0) + (
            len(paths) * (1 + len(RESCALES) + 3 + CROPS_PER_PHOTO) + TEXTURES
            + sum(len(c) for c in layouts.values()) + distinct)
        bar.refresh()
        run_mirrored(run, photos)
        run_rescaled(run, photos)
        run_groups(run, layouts)
        run_cse546(run, cse_files)
        run_negatives(run, photos, args.seed)
    data = run.data

    true = [f.probability for f in data.found if f.kind == "face"]
    chosen = choose_threshold(true, args.margin, args.step, stage, PRIMARY_MIN_PROBABILITY,
                              args.allow)
    strict = choose_threshold(true, args.margin, args.step, stage, PRIMARY_MIN_PROBABILITY)
    thresholds = sorted({*CANDIDATES, chosen, strict, shipped})
    table = rates(data, thresholds, stage)
    at = {row["threshold"]: row for row in table}
    by_source: dict[str, list[float]] = {}
    for f in data.found:
        by_source.setdefault(f"{f.kind}: {f.source}", []).append(f.probability)
    ok = (shipped <= chosen + 1e-9 and not data.missed
          and data.cse546_with_face == data.cse546_files)
    drops = sorted(data.drops)
    payload: dict[str, Any] = {
        "detector": {"stages": list(stages), "margin": DEFAULT_MARGIN,
                     "max_side": detector.max_side, "min_face_size": detector.min_face_size},
        "sources": {"celebrity_photos": len(paths), "cse546_files": data.cse546_files,
                    "images_detected": run.images},
        "true_faces": describe(true),
        "reviewed_faces": describe([f.probability for f in data.found if f.kind == "reviewed"]),
        "false_detections": describe([f.probability for f in data.found if f.kind == "false"]),
        "by_source": {k: describe(v) | {"values": sorted(v, reverse=True)}
                      for k, v in sorted(by_source.items())},
        "context_drop": {"max": drops[-1] if drops else None,
                         "p95": percentile(drops, 95), "count": len(drops)},
        "false_above_stage": [
            {"probability": f.probability, "source": f.source, "photo": f.photo,
             "box": [round(v, 1) for v in f.box],
             "in_photo": f.in_photo and [round(v, 1) for v in f.in_photo]}
            for f in sorted(data.found, key=lambda f: -f.probability)
            if f.kind == "false" and f.probability >= stage],
        "missed_true_faces": data.missed,
        "wrong_primary": {
            f"{t:g}": [{"probability": f.probability, "source": f.source, "photo": f.photo}
                       for f in wrong_primaries(data, t, stage, primary_index)]
            for t in (stage, shipped)},
        "cse546": {"files": data.cse546_files, "with_a_face": data.cse546_with_face},
        "rule": {"margin": args.margin, "step": args.step, "allow": args.allow,
                 "low": stage, "high": PRIMARY_MIN_PROBABILITY},
        "derived": chosen, "derived_keeping_every_face": strict, "shipped": shipped,
        "table": table, "pass": ok,
    }
    json_path = write_json("detection", payload)
    png_path = plot(data, table, chosen, shipped, stage)
    sheet = review_sheet(data)
    stats = payload["true_faces"]
    old, new = at[stage], at[shipped]
    spared = math.floor(args.allow * len(true) + 1e-9)
    summary("detection", (
        f"{len(true)} true-face observations: min {stats['min']:.3f}, p1 {stats['p1']:.3f}, "
        f"p5 {stats['p5']:.3f}; derived {chosen:g} (weakest kept - {args.margin:g} with "
        f"{spared} spared; {strict:g} to keep every one); shipped {shipped:g} keeps "
        f"{new['true_faces_kept']}/{new['true_faces']} and lists "
        f"{new['false_listed_with_a_face']} false detections in images with a face "
        f"({old['false_listed_with_a_face']} at {stage:g}), "
        f"{new['false_listed_without_a_face']} in images without one "
        f"({old['false_listed_without_a_face']} at {stage:g}, keep_best); CSE546 "
        f"{data.cse546_with_face}/{data.cse546_files} with a face "
        f"-> {json_path}, {png_path}, {sheet}"), ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
