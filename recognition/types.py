"""Result types of the recognition pipeline (plain data, JSON-friendly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "Unknown"
NO_FACE = "NoFace"


@dataclass(frozen=True)
class Face:
    """One detected face and who it is.

    ``box`` is ``(x1, y1, x2, y2)`` in pixels of the (EXIF-rotated) image;
    ``identity`` is an enrolled name or ``"Unknown"``; ``distance`` is the L2 distance
    between L2-normalised embeddings to the nearest enrolled photo (None when the
    gallery is empty).
    """

    box: tuple[float, float, float, float]
    probability: float
    identity: str
    distance: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"box", "probability", "identity", "distance"}``."""
        return {
            "box": [round(v, 1) for v in self.box],
            "probability": round(self.probability, 4),
            "identity": self.identity,
            "distance": None if self.distance is None else round(self.distance, 4),
        }


@dataclass(frozen=True)
class Recognition:
    """Every face of one image; ``label`` is what the compat route answers.

    ``label`` is the identity of the most confident face, ``"Unknown"`` when that face
    matches no one, or ``"NoFace"`` when nothing was detected. ``timings`` holds
    seconds spent in ``decode``, ``detect``, ``embed`` and ``match``.
    """

    faces: tuple[Face, ...]
    label: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"label", "faces": [...], "timings"}``."""
        return {
            "label": self.label,
            "faces": [f.to_dict() for f in self.faces],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
