"""Pure gallery logic: names, versions, model checks, JSON round trip, matching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recognition.errors import GalleryError
from recognition.gallery import Gallery, Matcher, pairwise_distances
from recognition.names import validate_name

W = {"weights_name": "model-a", "weights_sha256": "a" * 64}


def _unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["Ben Affleck", "elton_john", "A", "x" * 64, "j.doe-2"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", " lead", "trail ", "x" * 65, "a/b", "né", "Unknown",
                                  "noface", "a\nb"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(GalleryError):
        validate_name(name)


def test_enrol_appends_and_bumps_version() -> None:
    g = Gallery().enrolled("ann", _unit([1, 0, 0]), ["a1.jpg"], **W)
    g = g.enrolled("ann", _unit([0.9, 0.1, 0]), ["a2.jpg"], **W)
    g = g.enrolled("bob", _unit([0, 1, 0]), ["b1.jpg"], **W)
    assert g.version == 3 and g.dim == 3
    assert g.counts() == {"ann": 2, "bob": 1}
    g2 = g.without("ann")
    assert g2.counts() == {"bob": 1} and g2.version == 4
    assert g.counts() == {"ann": 2, "bob": 1}  # snapshots are immutable
    with pytest.raises(GalleryError, match="not enrolled"):
        g2.without("ann")


def test_embeddings_are_normalised_and_checked() -> None:
    g = Gallery().enrolled("ann", np.array([[3.0, 4.0]]), ["a.jpg"], **W)
    assert np.allclose(g.identities["ann"].embeddings, [[0.6, 0.8]])
    with pytest.raises(GalleryError, match="source"):
        Gallery().enrolled("ann", _unit([1, 0]), ["a.jpg", "b.jpg"], **W)
    with pytest.raises(GalleryError, match="zero"):
        Gallery().enrolled("ann", np.zeros((1, 2)), ["a.jpg"], **W)


def test_other_model_is_refused() -> None:
    g = Gallery().enrolled("ann", _unit([1, 0]), ["a.jpg"], **W)
    with pytest.raises(GalleryError, match="re-enrol"):
        g.enrolled("bob", _unit([0, 1]), ["b.jpg"], weights_name="m2", weights_sha256="b" * 64)
    with pytest.raises(GalleryError, match="re-enrol"):
        g.enrolled("bob", _unit([0, 1, 0]), ["b.jpg"], **W)  # other dimension


def test_json_round_trip() -> None:
    g = Gallery().enrolled("ann", _unit([1, 2, 3], [3, 2, 1]), ["a1.jpg", "a2.jpg"], **W)
    doc = json.loads(json.dumps(g.to_json()))
    back = Gallery.from_json(doc)
    assert back.version == g.version and back.weights_sha256 == g.weights_sha256
    assert back.identities["ann"].sources == ("a1.jpg", "a2.jpg")
    assert np.allclose(back.identities["ann"].embeddings, g.identities["ann"].embeddings,
                       atol=1e-6)


@pytest.mark.parametrize("doc", [
    [], {"format": "other"}, {"format": "facefleet-gallery", "format_version": 99},
    {"format": "facefleet-gallery", "format_version": 1, "version": 1, "dim": 2,
     "weights": {"name": "m", "sha256": "s"},
     "identities": {"ann": {"sources": ["a"], "embeddings": [[1.0, 0.0, 0.0]]}}},
])
def test_malformed_documents(doc: object) -> None:
    with pytest.raises(GalleryError):
        Gallery.from_json(doc)


def test_pairwise_distances() -> None:
    d = pairwise_distances(_unit([1, 0], [0, 1]), _unit([1, 0], [-1, 0]))
    assert np.allclose(d, [[0, 2], [np.sqrt(2), np.sqrt(2)]])


def test_matcher_nearest_neighbour_and_unknown() -> None:
    g = (Gallery()
         .enrolled("ann", _unit([1, 0, 0], [0, 0, 1]), ["a1", "a2"], **W)
         .enrolled("bob", _unit([0, 1, 0]), ["b1"], **W))
    matcher = Matcher(g, threshold=0.5)
    # Close to ann's second photo; close to bob; far from everyone.
    queries = _unit([0.05, 0, 1], [0.1, 1, 0], [1, 1, 1])
    matches = matcher.match(queries)
    assert [m.identity for m in matches] == ["ann", "bob", "Unknown"]
    assert matches[0].distance == pytest.approx(0.05, abs=0.01)
    assert matches[2].distance is not None and matches[2].distance > 0.5


def test_matcher_on_empty_gallery() -> None:
    matches = Matcher(Gallery(), threshold=1.0).match(_unit([1, 0]))
    assert [(m.identity, m.distance) for m in matches] == [("Unknown", None)]
