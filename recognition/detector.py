"""Face detection with facenet-pytorch's MTCNN (weights ship inside the wheel).

Every face at or above the reporting threshold (``FACEFLEET_MIN_FACE_PROBABILITY``,
:data:`config.settings.REPORT_MIN_PROBABILITY` by default) is
returned (``keep_all``) with its box, five landmarks and probability, most confident
first. Very large images are detected on a downscaled copy whose long side is
``max_side`` (``FACEFLEET_DETECT_MAX_SIDE``, :data:`config.settings.DETECT_MAX_SIDE` =
960 by default) and the boxes and landmarks mapped back; crops are always cut from the
full-resolution image. The cost is mostly in MTCNN's second and third stages, which
crop, resample and score every candidate box its image pyramid yields, and candidates
grow with the pixels it searches: a busy 1920 px group photo takes about 2.7x longer
detected whole than on the 960 px copy (``python -m bench.groups``, docs/benchmarks.md).
The price is the smallest face. MTCNN searches down to ``min_face_size`` (20 px) in the
copy, but a face under 28 px there (20 px over the pyramid step 0.709) is seen by one
pyramid level only, at the size of P-Net's window, and on the blurrier copy a few of
those that the full image yields score under the reporting cut or are dropped by the
second stage. So the documented minimum (:meth:`Detector.smallest_face`) is 28.2 px in
the copy: on an image of long side L, 28.2 * L / max_side pixels of box width, 56 px on
a 1920 px photo and 118 px on a 4032 px (12 MP) one. No composed group-photo face at or
above it that the full-size detector found was lost; most below it are found too. Images
no larger than ``max_side`` (the 5-celebrity photos, the 64 x 64 reference crops) are
detected as they are, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from config.settings import DETECT_MAX_SIDE, REPORT_MIN_PROBABILITY

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` (x1, y1, x2, y2) in image pixels, ``landmarks`` (5 x (x, y))."""

    box: Box
    probability: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class Detector:
    """MTCNN wrapper returning :class:`Detection` lists and fixed-size face crops.

    ``margin`` follows facenet-pytorch's convention: pixels of context added around the
    box, measured in the ``image_size`` output crop.

    ``min_probability`` (default :data:`REPORT_MIN_PROBABILITY`) drops weak detections:
    MTCNN's own last stage (0.7) also passes hands, arms, a bow tie and second boxes
    half on a face. Clear faces score well above the cut, though a few hard ones (tinted
    glasses, a heavy filter) come near it at some sizes and JPEG qualities, and a face
    mostly covered by hair and a hand scores ~0.73 (``python -m bench.detection``
    measures both sides). So with ``keep_best`` (default) an image none of whose
    detections reaches ``min_probability`` still yields its most probable one: a photo
    whose only face is hard to see is recognised and enrolled as before instead of
    answering NoFace, and a photo without any face shows its best candidate (which
    passed MTCNN's last stage) as every image did with the old 0.7 cut. Beside a face
    above the cut, weaker detections are not listed, faces among them.

    ``max_side``: an image whose long side is larger is detected on a copy of that long
    side (see the module docstring and :meth:`smallest_face`).
    """

    def __init__(
        self, *, image_size: int = 160, margin: int = 10, min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        min_probability: float = REPORT_MIN_PROBABILITY, keep_best: bool = True,
        max_side: int = DETECT_MAX_SIDE, device: str = "cpu",
    ) -> None:
        self.image_size = image_size
        self.margin = margin
        self.min_face_size = min_face_size
        self.min_probability = min_probability
        self.keep_best = keep_best
        self.max_side = max_side
        self._mtcnn = MTCNN(
            image_size=image_size, margin=margin, min_face_size=min_face_size,
            thresholds=list(thresholds), keep_all=True, select_largest=False,
            post_process=False, device=torch.device(device),
        ).eval()

    def detect(self, image: Image.Image) -> list[Detection]:
        """Faces in an RGB image at or above ``min_probability``, most confident first;
        with ``keep_best``, the most confident alone when none reaches it (empty list
        when MTCNN finds nothing)."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[Image.Image], max_batch: int = 32
                    ) -> list[list[Detection]]:
        """:meth:`detect` for several images: those of one (detection) size go through
        MTCNN together, at most ``max_batch`` at a time.

        MTCNN's cost on a small image is mostly per call (one pyramid of tiny tensors);
        a batch of same-size images shares each network pass, so a worker holding
        several 64 x 64 requests detects them in about the time of a few. Images of
        different sizes cannot share a pass (MTCNN stacks them into one tensor).
        """
        out: list[list[Detection]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[tuple[int, Image.Image, float]]] = {}
        for index, image in enumerate(images):
            if min(image.size) < self.min_face_size:
                continue  # MTCNN's pyramid would be empty (and it crashes on that)
            small, scale = self._detection_copy(image)
            groups.setdefault(small.size, []).append((index, small, scale))
        for members in groups.values():
            for start in range(0, len(members), max(1, max_batch)):
                chunk = members[start:start + max(1, max_batch)]
                with torch.inference_mode():
                    if len(chunk) == 1:
                        found = [self._mtcnn.detect(chunk[0][1], landmarks=True)]
                    else:
                        boxes, probs, points = self._mtcnn.detect(
                            [small for _, small, _ in chunk], landmarks=True)
                        found = list(zip(boxes, probs, points, strict=True))
                for (index, _, scale), (boxes, probs, points) in zip(chunk, found,
                                                                     strict=True):
                    out[index] = self._kept(boxes, probs, points, scale,
                                            images[index].size)
        return out

    def smallest_face(self, size: tuple[int, int]) -> float:
        """The documented minimum face, in box-width pixels, of an image of ``size``
        (width, height): ``min_face_size / factor`` (28 px) in the detection copy, mapped
        back to the image (see the module docstring)."""
        return self.min_face_size / self.factor * max(1.0, max(size) / self.max_side)

    @property
    def factor(self) -> float:
        """MTCNN's image pyramid step (each level 0.709 the size of the one before)."""
        return float(self._mtcnn.factor)

    def _detection_copy(self, image: Image.Image) -> tuple[Image.Image, float]:
        """The image MTCNN sees, and the factor that maps its boxes back."""
        scale = max(image.size) / self.max_side
        if scale <= 1.0:
            return image, 1.0
        size = (round(image.width / scale), round(image.height / scale))
        return image.resize(size, Image.Resampling.BILINEAR), scale

    def _kept(self, boxes: Any, probs: Any, points: Any, scale: float,
              size: tuple[int, int]) -> list[Detection]:
        """MTCNN's output for one image → the detections this service reports."""
        if boxes is None:
            return []
        found = sorted((
            Detection(
                box=_clip(tuple(float(v) * scale for v in box), size),
                probability=float(prob),
                landmarks=tuple((float(x) * scale, float(y) * scale) for x, y in point),
            )
            for box, prob, point in zip(boxes, probs, points, strict=True)
            if prob is not None
        ), key=lambda d: d.probability, reverse=True)
        kept = [d for d in found if d.probability >= self.min_probability]
        if not kept and found and self.keep_best:
            kept = found[:1]
        return kept

    def crop(self, image: Image.Image, detection: Detection) -> np.ndarray:
        """The face with margin, resized to ``image_size`` square: uint8 H x W x 3."""
        x1, y1, x2, y2 = detection.box
        size = self.image_size
        # Same arithmetic as facenet_pytorch.extract_face: margin is in output pixels.
        mx = self.margin * (x2 - x1) / (size - self.margin)
        my = self.margin * (y2 - y1) / (size - self.margin)
        box = (
            int(max(x1 - mx / 2, 0)), int(max(y1 - my / 2, 0)),
            int(min(x2 + mx / 2, image.width)), int(min(y2 + my / 2, image.height)),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            box = (0, 0, image.width, image.height)  # degenerate box: whole image
        face = image.crop(box).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(face, dtype=np.uint8)

    def crops(self, image: Image.Image, detections: Sequence[Detection]) -> np.ndarray:
        """Crops of several detections stacked: uint8 N x H x W x 3."""
        size = self.image_size
        if not detections:
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        return np.stack([self.crop(image, d) for d in detections])


def _clip(box: tuple[float, ...], size: tuple[int, int]) -> Box:
    width, height = size
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))
