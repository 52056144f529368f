"""Shared, expensive-to-build parts: real weights, the networks, the 5-celebrity set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from config.settings import Settings
from recognition.detector import Detector
from recognition.embedder import Embedder
from recognition.gallery_store import GalleryStore
from recognition.pipeline import DEFAULT_MARGIN, Recognizer
from recognition.weights import WeightsInfo, ensure_weights, load_embedder
from recognition.weights.sdist import celebrity_dataset

CACHE_DIR = Settings.from_env().cache_dir


@dataclass(frozen=True)
class Parts:
    """The loaded model, shared by every test of the session."""

    weights: WeightsInfo
    detector: Detector
    embedder: Embedder

    def recognizer(self, gallery: Path | str, threshold: float | None = None,
                   **kwargs: object) -> Recognizer:
        """A Recognizer over these networks with its own gallery."""
        store = GalleryStore(str(gallery), weights_name=self.weights.name,
                             weights_sha256=self.weights.sha256)
        return Recognizer(
            detector=self.detector, embedder=self.embedder, gallery_store=store,
            threshold=self.weights.threshold if threshold is None else threshold,
            weights=self.weights, max_pixels=40_000_000, **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="session")
def parts() -> Parts:
    """Real msceleb-128 weights (converted once into the cache), MTCNN, embedder."""
    torch.set_num_threads(1)
    info = ensure_weights("facenet-msceleb-128", CACHE_DIR)
    return Parts(info, Detector(margin=DEFAULT_MARGIN),
                 Embedder(load_embedder(info), prewhiten=info.prewhiten, flip=False))


@pytest.fixture(scope="session")
def celebrities() -> Path:
    """``data/`` of the 5-celebrity set (``train/<name>/*.jpg``, ``val/<name>/*.jpg``)."""
    return celebrity_dataset(CACHE_DIR)


@pytest.fixture(scope="session")
def train_embeddings(parts: Parts, celebrities: Path) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Identity → (embeddings of its train photos, file names), computed once."""
    recognizer = parts.recognizer("/nonexistent/gallery.json")
    out = {}
    for folder in sorted((celebrities / "train").iterdir()):
        files = sorted(folder.iterdir())
        images = [recognizer.decode(f.read_bytes()) for f in files]
        out[folder.name] = (recognizer.embed_primary(images), [f.name for f in files])
    return out


def write_gallery(parts: Parts, path: Path,
                  embeddings: dict[str, tuple[np.ndarray, list[str]]],
                  skip: tuple[str, ...] = ()) -> Path:
    """A gallery file enrolling every identity of ``embeddings`` but ``skip``."""
    store = GalleryStore(str(path), weights_name=parts.weights.name,
                         weights_sha256=parts.weights.sha256)
    for name, (emb, sources) in embeddings.items():
        if name not in skip:
            store.enroll(name, emb, sources)
    return path
