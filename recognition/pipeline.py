"""The recognition pipeline: bytes → faces → embeddings → identities, built once, reused.

A :class:`Recognizer` holds the MTCNN detector, the embedding network and a gallery
snapshot. Build it once per process (``Recognizer.from_settings``) and call it for
every request: model construction and weight loading cost far more than recognising
one image. ``recognize_many`` sends images of one size through the detector together
and all faces of all its images through the embedder in one batch.

The label of an image is the identity of its *primary* face: the largest face among
those detected with probability ≥ ``PRIMARY_MIN_PROBABILITY`` (the most probable face
when none is that sure). MTCNN's probabilities saturate near 1.0 for every clear
face, so "most confident" alone picks a bystander about as often as the subject; the
subject of a photo is its biggest clear face.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from config import aws
from config.settings import Settings
from recognition.detector import Detection, Detector
from recognition.embedder import Embedder
from recognition.errors import ImageError, NoFaceError, RecognitionError
from recognition.gallery import Gallery, Matcher
from recognition.gallery_store import GalleryStore
from recognition.images import decode_image
from recognition.names import validate_name
from recognition.types import NO_FACE, Face, Recognition
from recognition.weights import WeightsInfo, ensure_weights, load_embedder

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

#: Context around the MTCNN box, in pixels of the 160 px crop (facenet-pytorch's
#: convention). Tuned on the 5-celebrity set by bench/accuracy.py.
DEFAULT_MARGIN = 10
#: Detections below this probability are not considered for the primary face.
PRIMARY_MIN_PROBABILITY = 0.95
#: Seconds between two checks of the stored gallery's version.
GALLERY_CHECK_INTERVAL = 1.0


def torch_device(name: str) -> str:
    """The torch device for a ``FACEFLEET_DEVICE`` value: ``auto`` is the GPU when torch
    sees one (a CUDA build on a machine without a GPU sees none), else the CPU; asking
    for ``cuda`` where there is none is an error, not a silent fallback."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RecognitionError("FACEFLEET_DEVICE=cuda, but torch sees no GPU (a CPU build "
                               "of torch, or no driver); use auto or cpu", "no_gpu")
    return name


def primary_index(detections: Sequence[Detection]) -> int | None:
    """Index of the primary face (see module docstring), None when there is none."""
    if not detections:
        return None
    sure = [i for i, d in enumerate(detections) if d.probability >= PRIMARY_MIN_PROBABILITY]
    if not sure:
        return max(range(len(detections)), key=lambda i: detections[i].probability)
    return max(sure, key=lambda i: detections[i].area)


class Recognizer:
    """Detector + embedder + gallery, loaded once; see the module docstring."""

    def __init__(
        self, *, detector: Detector, embedder: Embedder, gallery_store: GalleryStore,
        threshold: float, weights: WeightsInfo, max_pixels: int, max_bytes: int | None = None,
        check_interval: float = GALLERY_CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.gallery_store = gallery_store
        self.threshold = threshold
        self.weights = weights
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self._check_interval = check_interval
        self._clock = clock
        self._last_check = clock()
        gallery, self._stamp = gallery_store.load_with_stamp()
        self._use(gallery)

    @classmethod
    def from_settings(
        cls, settings: Settings, s3_client: S3Client | None = None, *, gallery: str | None = None,
        device: str | None = None, flip: bool = False,
    ) -> Recognizer:
        """Obtain weights, check the gallery, then load MTCNN and the embedder.

        ``gallery`` overrides ``settings.gallery`` (a path or ``s3://`` URI). The gallery
        is opened before the networks are built so that an unreachable store fails in
        well under a second.
        """
        torch.set_num_threads(settings.torch_threads)
        device = torch_device(device or settings.device)
        location = gallery or settings.gallery
        needs_s3 = location.startswith("s3://") or settings.weights.startswith("s3://")
        if s3_client is None and needs_s3:
            s3_client = aws.s3_client(settings, "interactive")
        info = ensure_weights(settings.weights, settings.cache_dir, s3_client=s3_client)
        store = GalleryStore.from_settings(
            settings, location, s3_client=s3_client, weights_name=info.name,
            weights_sha256=info.sha256,
        )
        store.load()  # fail fast (unreachable endpoint, other model) before heavy work
        threshold = settings.threshold if settings.threshold is not None else info.threshold
        return cls(
            detector=Detector(margin=DEFAULT_MARGIN, device=device,
                              min_probability=settings.min_face_probability,
                              max_side=settings.detect_max_side),
            embedder=Embedder(load_embedder(info, device), prewhiten=info.prewhiten, flip=flip),
            gallery_store=store, threshold=threshold, weights=info,
            max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes,
        )

    # -- gallery -------------------------------------------------------------------

    @property
    def gallery(self) -> Gallery:
        """The gallery snapshot in use."""
        return self._gallery

    def _use(self, gallery: Gallery) -> None:
        self._gallery = gallery
        self._matcher = Matcher(gallery, self.threshold)

    def refresh_gallery(self, force: bool = False) -> bool:
        """Reload the gallery if its stored version changed; True when reloaded.

        The check (an S3 HEAD or a file stat) runs at most once per
        ``check_interval`` seconds unless ``force``.
        """
        now = self._clock()
        if not force and now - self._last_check < self._check_interval:
            return False
        self._last_check = now
        stamp = self.gallery_store.stamp()
        if stamp == self._stamp:
            return False
        gallery, self._stamp = self.gallery_store.load_with_stamp()
        changed = gallery.version != self._gallery.version or stamp is None
        self._use(gallery)
        return changed

    # -- recognition ---------------------------------------------------------------

    def decode(self, data: bytes) -> Image.Image:
        """Bytes → upright RGB image within the configured limits (raises ImageError)."""
        return decode_image(data, self.max_pixels, self.max_bytes)

    def recognize(self, data: bytes) -> Recognition:
        """Recognise every face of one image (raises ImageError on a bad image)."""
        result = self.recognize_many([data])[0]
        if isinstance(result, ImageError):
            raise result
        return result

    def recognize_many(self, images: Sequence[bytes]) -> list[Recognition | ImageError]:
        """Recognise several images; a bad one yields its ImageError in its place.

        Every face of every image goes through the embedder in one batch.
        """
        self.refresh_gallery()
        decoded: list[Image.Image | ImageError] = []
        decode_times: list[float] = []
        for data in images:
            start = time.perf_counter()
            try:
                decoded.append(self.decode(data))
            except ImageError as exc:
                decoded.append(exc)
            decode_times.append(time.perf_counter() - start)
        good = [im for im in decoded if isinstance(im, Image.Image)]
        recognitions = iter(self.recognize_images(good))
        out: list[Recognition | ImageError] = []
        for item, seconds in zip(decoded, decode_times, strict=True):
            if isinstance(item, ImageError):
                out.append(item)
            else:
                rec = next(recognitions)
                rec.timings["decode"] = seconds
                out.append(rec)
        return out

    def recognize_images(self, images: Sequence[Image.Image]) -> list[Recognition]:
        """Recognise decoded RGB images: images of one size detected together, all
        faces embedded in one batch."""
        start = time.perf_counter()
        detections = self.detector.detect_many(images)
        crops = [self.detector.crops(image, found)
                 for image, found in zip(images, detections, strict=True)]
        # One batched pass has no per-image time: each image is charged an equal share.
        detect_each = (time.perf_counter() - start) / max(1, len(images))
        detect_times = [detect_each] * len(images)
        start = time.perf_counter()
        embeddings = self.embedder.embed(np.concatenate(crops)) if images else None
        embed_total = time.perf_counter() - start
        start = time.perf_counter()
        matches = self._matcher.match(embeddings) if embeddings is not None else []
        match_total = time.perf_counter() - start
        total_faces = max(1, len(matches))
        results, offset = [], 0
        for found, seconds in zip(detections, detect_times, strict=True):
            mine = matches[offset:offset + len(found)]
            offset += len(found)
            faces = tuple(
                Face(box=d.box, probability=d.probability, identity=m.identity,
                     distance=m.distance)
                for d, m in zip(found, mine, strict=True)
            )
            primary = primary_index(found)
            label = NO_FACE if primary is None else faces[primary].identity
            share = len(found) / total_faces  # batch time split by face count
            results.append(Recognition(faces=faces, label=label, timings={
                "decode": 0.0, "detect": seconds, "embed": embed_total * share,
                "match": match_total * share,
            }))
        return results

    # -- enrolment -----------------------------------------------------------------

    def embed_enrolment(self, data: bytes) -> torch.Tensor:
        """1 x D embedding of the primary face (raises ImageError or NoFaceError)."""
        return torch.from_numpy(self.embed_primary([self.decode(data)])[0][None, :])

    def embed_primary(self, images: Sequence[Image.Image]) -> np.ndarray:
        """N x D embeddings of each image's primary face, in one batch.

        Raises NoFaceError naming the (0-based) image positions with no face.
        """
        crops, missing = self._primary_crops(images)
        if missing:
            raise NoFaceError(f"no face found in image(s) at position {missing}")
        return self.embedder.embed(crops)

    def _primary_crops(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, list[int]]:
        crops, missing = [], []
        for i, image in enumerate(images):
            found = self.detector.detect(image)
            primary = primary_index(found)
            if primary is None:
                missing.append(i)
            else:
                crops.append(self.detector.crop(image, found[primary]))
        size = self.detector.image_size
        stacked = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
        return stacked, missing

    def enroll(self, name: str, photos: Sequence[tuple[bytes, str]]) -> Gallery:
        """Enrol photos ``(bytes, source name)`` of one person, all or nothing.

        Raises GalleryError (bad name), ImageError or NoFaceError naming the photo at
        fault; nothing is stored unless every photo has a face.
        """
        validate_name(name)  # before any model work
        images = []
        for data, source in photos:
            try:
                images.append(self.decode(data))
            except ImageError as exc:
                raise ImageError(f"{source}: {exc}; nothing was enrolled", exc.code) from None
        crops, missing = self._primary_crops(images)
        if missing:
            names = ", ".join(photos[i][1] for i in missing)
            raise NoFaceError(f"no face found in {names}; nothing was enrolled")
        embeddings = self.embedder.embed(crops)
        gallery = self.gallery_store.enroll(name, embeddings, [src for _, src in photos])
        self.refresh_gallery(force=True)
        return gallery
