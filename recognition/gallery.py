"""The gallery as data, and nearest-neighbour matching — pure logic, no I/O, no torch.

A gallery maps identity names to the L2-normalised embeddings of their enrolled photos
(and the photos' source names). It records the weights (name + sha256) and embedding
size it was made with, because embeddings of two models are not comparable: loading a
gallery made by another model is refused with a "re-enrol" message.

Matching: a query face's distance to an identity is the L2 distance to that
identity's *closest* enrolled photo (nearest neighbour); the face takes the identity
at the smallest distance, or ``Unknown`` when that distance is above the threshold.
On unit vectors L2 distance d and cosine similarity s are tied by d² = 2 − 2s, so d
ranges over [0, 2]; the calibrated threshold for each model lives in the weights
registry (``recognition.weights``) and can be overridden by ``FACEFLEET_THRESHOLD``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from recognition.errors import GalleryError
from recognition.names import lookalike, validate_name
from recognition.types import UNKNOWN

FORMAT = "facefleet-gallery"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Identity:
    """Enrolled photos of one person: ``embeddings`` (k x D, unit rows) and sources."""

    embeddings: np.ndarray
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Gallery:
    """An immutable gallery snapshot; every change returns a new one, version + 1."""

    version: int = 0
    weights_name: str | None = None
    weights_sha256: str | None = None
    dim: int | None = None
    identities: Mapping[str, Identity] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Identity name → number of enrolled photos, sorted by name."""
        return {name: len(self.identities[name].sources) for name in sorted(self.identities)}

    def check_model(self, weights_name: str, weights_sha256: str, dim: int) -> None:
        """Raise GalleryError if this gallery was made with other weights."""
        if self.weights_sha256 is None or not self.identities:
            return  # empty gallery: any model may start filling it
        if self.weights_sha256 != weights_sha256 or self.dim != dim:
            raise GalleryError(
                f"the gallery was made with weights {self.weights_name} "
                f"(sha256 {self.weights_sha256[:12]}…, {self.dim}-d) but the loaded model is "
                f"{weights_name} (sha256 {weights_sha256[:12]}…, {dim}-d); embeddings of "
                "different models cannot be compared: re-enrol every identity with this "
                "model (or use a new gallery)"
            )

    def enrolled(
        self, name: str, embeddings: np.ndarray, sources: Sequence[str], *,
        weights_name: str, weights_sha256: str,
    ) -> Gallery:
        """A copy with ``embeddings`` (k x D) added to ``name``'s photos."""
        validate_name(name)
        twin = lookalike(name, self.identities)
        if twin is not None:
            raise GalleryError(f"{name!r} differs from the enrolled {twin!r} only in letter "
                               f"case; add the photos to {twin!r} or choose a distinct name")
        vectors = _unit_rows(np.asarray(embeddings, dtype=np.float32))
        if len(vectors) != len(sources):
            raise GalleryError(f"{len(vectors)} embeddings but {len(sources)} source names")
        if len(vectors) == 0:
            raise GalleryError(f"no photos to enrol for {name!r}")
        dim = int(vectors.shape[1])
        self.check_model(weights_name, weights_sha256, dim)
        identities = dict(self.identities)
        if name in identities:
            old = identities[name]
            vectors = np.concatenate([old.embeddings, vectors])
            sources = (*old.sources, *sources)
        identities[name] = Identity(vectors, tuple(sources))
        return replace(self, version=self.version + 1, weights_name=weights_name,
                       weights_sha256=weights_sha256, dim=dim, identities=identities)

    def without(self, name: str) -> Gallery:
        """A copy without ``name`` (raises GalleryError if it is not enrolled)."""
        if name not in self.identities:
            raise GalleryError(f"{name!r} is not enrolled")
        identities = {k: v for k, v in self.identities.items() if k != name}
        return replace(self, version=self.version + 1, identities=identities)

    def to_json(self) -> dict[str, Any]:
        """The stored form (embeddings rounded to 6 decimals: far below model noise)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "weights": {"name": self.weights_name, "sha256": self.weights_sha256},
            "dim": self.dim,
            "identities": {
                name: {
                    "sources": list(ident.sources),
                    "embeddings": np.round(ident.embeddings.astype(np.float64), 6).tolist(),
                }
                for name, ident in sorted(self.identities.items())
            },
        }

    @classmethod
    def from_json(cls, doc: Any) -> Gallery:
        """Parse and validate the stored form; GalleryError names what is wrong."""
        try:
            if doc.get("format") != FORMAT:
                raise GalleryError("not a facefleet gallery (missing format marker)")
            if doc.get("format_version") != FORMAT_VERSION:
                raise GalleryError(
                    f"gallery format version {doc.get('format_version')} is not supported "
                    f"(this code reads version {FORMAT_VERSION})"
                )
            dim = doc["dim"]
            identities: dict[str, Identity] = {}
            for name, entry in doc["identities"].items():
                vectors = np.asarray(entry["embeddings"], dtype=np.float32)
                sources = tuple(str(s) for s in entry["sources"])
                if vectors.ndim != 2 or vectors.shape[1] != dim or len(vectors) != len(sources):
                    raise GalleryError(f"identity {name!r} has malformed embeddings")
                identities[validate_name(name, stored=True)] = Identity(_unit_rows(vectors),
                                                                        sources)
            return cls(
                version=int(doc["version"]),
                weights_name=doc["weights"]["name"],
                weights_sha256=doc["weights"]["sha256"],
                dim=None if dim is None else int(dim),
                identities=identities,
            )
        except GalleryError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"the gallery document is malformed ({exc!r})") from None


@dataclass(frozen=True)
class Match:
    """Who a face is (``identity`` or ``Unknown``) and its nearest distance."""

    identity: str
    distance: float | None


class Matcher:
    """Nearest-neighbour matcher over a gallery snapshot (built once per snapshot)."""

    def __init__(self, gallery: Gallery, threshold: float) -> None:
        self.threshold = threshold
        names = sorted(gallery.identities)
        self._labels = np.array([n for n in names for _ in gallery.identities[n].sources])
        dim = gallery.dim or 0
        self._matrix = (np.concatenate([gallery.identities[n].embeddings for n in names])
                        if names else np.zeros((0, dim), dtype=np.float32))

    def match(self, queries: np.ndarray) -> list[Match]:
        """One Match per row of ``queries`` (N x D unit vectors)."""
        if len(queries) == 0:
            return []
        if len(self._matrix) == 0:
            return [Match(UNKNOWN, None) for _ in range(len(queries))]
        distances = pairwise_distances(queries, self._matrix)
        best = distances.argmin(axis=1)
        out = []
        for row, col in enumerate(best):
            distance = float(distances[row, col])
            identity = str(self._labels[col]) if distance <= self.threshold else UNKNOWN
            out.append(Match(identity, distance))
        return out


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distances between rows of unit-vector matrices a (N x D) and b (M x D)."""
    cosine = np.clip(a.astype(np.float64) @ b.astype(np.float64).T, -1.0, 1.0)
    return np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    if vectors.ndim != 2:
        raise GalleryError(f"embeddings must be a k x D matrix, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms < 1e-6) or not np.all(np.isfinite(vectors)):
        raise GalleryError("embeddings contain zero or non-finite vectors")
    unit: np.ndarray = (vectors / norms).astype(np.float32)
    return unit
