"""The accuracy benchmark's own arithmetic (ROC AUC, open set) on tiny hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.accuracy import Photo, open_set, pair_distances, roc_auc, roc_curve, top1


def test_roc_auc_counts_pairs_and_ties() -> None:
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    # 4 pairs: (2>1) win, (2 vs 2) tie, (0<1) loss, (0<2) loss -> 1.5 / 4.
    assert roc_auc(np.array([2.0, 0.0]), np.array([1.0, 2.0])) == pytest.approx(0.375)


def test_roc_auc_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 10, 40).astype(float), rng.integers(0, 10, 60).astype(float)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(pos, neg) == pytest.approx(brute)


def test_roc_curve_runs_corner_to_corner() -> None:
    fpr, tpr = roc_curve(np.array([0.9, 0.8]), np.array([0.1, 0.85]))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def _toy() -> tuple[np.ndarray, list[Photo]]:
    """Three people on three axes, two train and one val photo each."""
    rows, photos = [], []
    for k, name in enumerate(["a", "b", "c"]):
        for split, jitter in [("train", 0.05), ("train", -0.05), ("val", 0.1)]:
            v = np.zeros(3)
            v[k] = 1.0
            v[(k + 1) % 3] = jitter
            rows.append(v / np.linalg.norm(v))
            photos.append(Photo(split, name, Path(f"{name}-{split}-{jitter}.jpg")))
    return np.array(rows), photos


def test_top1_and_open_set_on_separable_people() -> None:
    emb, photos = _toy()
    assert top1(emb, photos)["correct"] == 3
    result = open_set(emb, photos)
    assert result["rejection"] == 1.0 and result["enrolled_misidentified"] == 0
    assert result["accept_threshold"] < result["left_out_min_distance"]
    same, different = pair_distances(emb, [p.identity for p in photos])
    assert len(same) == 3 * 3 and len(different) == 27
    assert roc_auc(-same, -different) == 1.0
