"""Recognition quality on the 5-celebrity set (bars: docs/benchmarks.md), with the shipped pipeline.

    python -m bench.accuracy            # the configured weights (default msceleb-128)
    python -m bench.accuracy --sweep    # also compare margins, flip TTA, face choice

Measures, on the sdist's ``train`` (93) and ``val`` (25) photos:

* top-1: val photos identified against a gallery of the train photos (bar 25/25);
* open set, leave one identity out: the gallery holds the train photos of the other
  four; the left-out person's photos (train + val) must come back Unknown while the
  enrolled people's val photos are all accepted, at ONE threshold across all five
  folds (bar ≥ 96 % rejected at 100 % accepted);
* verification ROC AUC over all pairs of train + val photos (bar ≥ 0.99), computed
  here with numpy (Mann-Whitney U, ties counted half).

Writes ``results/accuracy.json`` and ``results/accuracy.png`` (ROC curve, same/different
distance histograms with the threshold).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.common import new_figure, save_figure, summary, write_json
from config.settings import Settings
from recognition.pipeline import DEFAULT_MARGIN, Recognizer, primary_index
from recognition.weights.sdist import celebrity_dataset

BARS = {"top1": 25, "open_set_rejection": 0.96, "auc": 0.99}
#: The design's baseline: a plain pipeline (margin 10, prewhitening, nearest neighbour) scored this.
PLAIN_PIPELINE_AUC = 0.988


@dataclass(frozen=True)
class Photo:
    """One photo of the set: ``split`` is train or val."""

    split: str
    identity: str
    path: Path


def load_photos(data_root: Path) -> list[Photo]:
    """Every ``<split>/<identity>/<file>`` under ``data_root``, sorted."""
    return [Photo(p.parent.parent.name, p.parent.name, p)
            for p in sorted(data_root.glob("*/*/*")) if p.is_file()]


# -- metrics (pure) -------------------------------------------------------------------


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distances between rows of unit-vector matrices."""
    cosine = np.clip(a.astype(np.float64) @ b.astype(np.float64).T, -1.0, 1.0)
    return np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))


def nearest(gallery: np.ndarray, gallery_labels: Sequence[str],
            probes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Nearest-neighbour identity and distance for each probe row."""
    d = distances(probes, gallery)
    best = d.argmin(axis=1)
    return [gallery_labels[i] for i in best], d[np.arange(len(probes)), best]


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2."""
    scores = np.concatenate([positive, negative])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties (1-based), as in the Mann-Whitney U statistic.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    n_pos, n_neg = len(positive), len(negative)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) over every threshold, from (0,0) to (1,1)."""
    thresholds = np.unique(np.concatenate([positive, negative]))[::-1]
    tpr = [(positive >= t).mean() for t in thresholds]
    fpr = [(negative >= t).mean() for t in thresholds]
    return np.array([0.0, *fpr, 1.0]), np.array([0.0, *tpr, 1.0])


def pair_distances(emb: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Distances of all same-identity pairs and all different-identity pairs (i < j)."""
    d = distances(emb, emb)
    lab = np.asarray(labels)
    upper = np.triu(np.ones_like(d, dtype=bool), k=1)
    same = lab[:, None] == lab[None, :]
    return d[upper & same], d[upper & ~same]


def top1(emb: np.ndarray, photos: Sequence[Photo]) -> dict[str, Any]:
    """Val photos against a gallery of the train photos."""
    train = [i for i, p in enumerate(photos) if p.split == "train"]
    val = [i for i, p in enumerate(photos) if p.split == "val"]
    names, dist = nearest(emb[train], [photos[i].identity for i in train], emb[val])
    wrong = [{"photo": photos[i].path.name, "truth": photos[i].identity, "got": n}
             for i, n in zip(val, names, strict=True) if n != photos[i].identity]
    return {"correct": len(val) - len(wrong), "total": len(val), "wrong": wrong,
            "max_distance": float(dist.max()) if len(dist) else None}


def open_set(emb: np.ndarray, photos: Sequence[Photo]) -> dict[str, Any]:
    """Leave-one-identity-out: enrolled val probes vs the left-out identity's photos.

    ``accept_threshold`` is the smallest single threshold accepting every enrolled
    probe in every fold (they must also be identified correctly); ``rejection`` is the
    share of left-out probes farther than it, i.e. answered Unknown.
    """
    identities = sorted({p.identity for p in photos})
    enrolled_d: list[float] = []
    enrolled_wrong = 0
    left_out_d: list[float] = []
    folds = []
    for out in identities:
        gallery = [i for i, p in enumerate(photos) if p.split == "train" and p.identity != out]
        known = [i for i, p in enumerate(photos) if p.split == "val" and p.identity != out]
        unknown = [i for i, p in enumerate(photos) if p.identity == out]
        labels = [photos[i].identity for i in gallery]
        names, kd = nearest(emb[gallery], labels, emb[known])
        _, ud = nearest(emb[gallery], labels, emb[unknown])
        enrolled_wrong += sum(n != photos[i].identity for i, n in zip(known, names, strict=True))
        enrolled_d += kd.tolist()
        left_out_d += ud.tolist()
        folds.append({"left_out": out, "enrolled_max": float(kd.max()),
                      "left_out_min": float(ud.min()), "left_out_probes": len(unknown)})
    accept = max(enrolled_d)
    left = np.asarray(left_out_d)
    return {
        "accept_threshold": accept,
        "rejection": float((left > accept).mean()),
        "rejected": int((left > accept).sum()),
        "left_out_probes": len(left),
        "enrolled_probes": len(enrolled_d),
        "enrolled_misidentified": enrolled_wrong,
        "left_out_min_distance": float(left.min()),
        "folds": folds,
        "enrolled_distances": enrolled_d,
        "left_out_distances": left_out_d,
    }


def choose_threshold(open_result: dict[str, Any], same: np.ndarray,
                     different: np.ndarray) -> float:
    """One threshold: the middle of the gap between the largest accepted enrolled
    distance and the smallest left-out distance when they separate, else the
    accept threshold itself; rounded to 0.01."""
    low = open_result["accept_threshold"]
    high = open_result["left_out_min_distance"]
    value = (low + high) / 2.0 if high > low else low
    return float(np.ceil(value * 100.0) / 100.0)


def evaluate(emb: np.ndarray, photos: Sequence[Photo]) -> dict[str, Any]:
    """Every metric for one set of embeddings (one row per photo)."""
    same, different = pair_distances(emb, [p.identity for p in photos])
    result: dict[str, Any] = {"top1": top1(emb, photos), "open_set": open_set(emb, photos),
              "auc": roc_auc(-same, -different), "pairs": {"same": len(same),
                                                           "different": len(different)}}
    result["threshold"] = choose_threshold(result["open_set"], same, different)
    thr = result["threshold"]
    result["at_threshold"] = {
        "same_pairs_accepted": float((same <= thr).mean()),
        "different_pairs_rejected": float((different > thr).mean()),
        "left_out_rejected": float(
            (np.asarray(result["open_set"]["left_out_distances"]) > thr).mean()),
    }
    return result


# -- running the pipeline ---------------------------------------------------------------


def detect_photos(recognizer: Any, photos: Sequence[Photo]) -> list[tuple[Any, list[Any]]]:
    """Decode and detect every photo once: (image, detections) pairs."""
    detected = []
    for photo in tqdm(photos, desc="detect", file=sys.stderr, leave=False):
        image = recognizer.decode(photo.path.read_bytes())
        found = recognizer.detector.detect(image)
        if not found:
            raise SystemExit(f"no face detected in {photo.path}")
        detected.append((image, found))
    return detected


def embed_detected(recognizer: Any, detected: Sequence[tuple[Any, list[Any]]], *,
                   margin: int | None = None, selection: str = "primary") -> np.ndarray:
    """One embedding per photo: its primary face (or the most probable one)."""
    if margin is not None:
        recognizer.detector.margin = margin
    crops = [recognizer.detector.crop(image, found[primary_index(found) or 0
                                                   if selection == "primary" else 0])
             for image, found in detected]
    embeddings: np.ndarray = recognizer.embedder.embed(np.stack(crops))
    return embeddings


def plot(result: dict[str, Any], emb: np.ndarray, photos: Sequence[Photo], name: str) -> Path:
    """ROC curve and same/different distance histograms with the chosen threshold."""
    same, different = pair_distances(emb, [p.identity for p in photos])
    fig, axes = new_figure(1, 2)
    fpr, tpr = roc_curve(-same, -different)
    ax = axes[0][0]
    ax.plot(fpr, tpr, lw=2, label=f"AUC {result['auc']:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false accept rate", ylabel="true accept rate",
           title="All-pairs verification ROC (train+val)")
    ax.legend(loc="lower right")
    ax = axes[0][1]
    bins = np.linspace(0, 2, 81)
    ax.hist(same, bins=bins, alpha=0.6, density=True, label=f"same person ({len(same)})")
    ax.hist(different, bins=bins, alpha=0.6, density=True,
            label=f"different people ({len(different)})")
    ax.axvline(result["threshold"], color="k", ls="--",
               label=f"Unknown threshold {result['threshold']:.2f}")
    ax.set(xlabel="L2 distance (L2-normalised embeddings)", ylabel="density",
           title="Pair distances")
    ax.legend()
    return save_figure(fig, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 when every bar is met."""
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true",
                        help="also compare crop margins, flip TTA and face selection")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    photos = load_photos(celebrity_dataset(settings.cache_dir))
    recognizer = Recognizer.from_settings(settings, gallery=str(Path("/nonexistent/none")))
    detected = detect_photos(recognizer, photos)
    emb = embed_detected(recognizer, detected)
    result = evaluate(emb, photos)
    sweep = run_sweep(recognizer, photos, detected) if args.sweep else None
    recognizer.detector.margin = DEFAULT_MARGIN

    top, ops = result["top1"], result["open_set"]
    ok = (top["correct"] >= BARS["top1"] and ops["rejection"] >= BARS["open_set_rejection"]
          and ops["enrolled_misidentified"] == 0 and result["auc"] >= BARS["auc"])
    payload = {
        "weights": {"name": recognizer.weights.name, "sha256": recognizer.weights.sha256,
                    "registry_threshold": recognizer.weights.threshold},
        "pipeline": {"margin": DEFAULT_MARGIN, "flip_tta": recognizer.embedder.flip,
                     "selection": "primary (largest face with p >= 0.95)"},
        "photos": {"total": len(photos),
                   "train": sum(p.split == "train" for p in photos),
                   "val": sum(p.split == "val" for p in photos)},
        "bars": BARS, "plain_pipeline_auc": PLAIN_PIPELINE_AUC, "pass": ok,
        **result, "sweep": sweep,
    }
    json_path = write_json("accuracy", payload)
    png_path = plot(result, emb, photos, "accuracy")
    summary("accuracy", (
        f"top-1 {top['correct']}/{top['total']}, open-set rejection "
        f"{ops['rejected']}/{ops['left_out_probes']} ({ops['rejection']:.1%}) at 100% "
        f"accept (t={ops['accept_threshold']:.3f}), AUC {result['auc']:.4f} "
        f"(plain {PLAIN_PIPELINE_AUC}), threshold {result['threshold']:.2f} "
        f"-> {json_path}, {png_path}"), ok)
    return 0 if ok else 1


def run_sweep(recognizer: Any, photos: Sequence[Photo],
              detected: Sequence[tuple[Any, list[Any]]]) -> list[dict[str, Any]]:
    """Metrics for each margin x flip x face-selection variant."""
    rows = []
    variants = [(m, f, s) for m in (0, 10, 20, 32, 44) for f in (False, True)
                for s in ("primary", "most_probable")]
    flip = recognizer.embedder.flip
    for margin, use_flip, selection in tqdm(variants, desc="sweep", file=sys.stderr):
        recognizer.embedder.flip = use_flip
        emb = embed_detected(recognizer, detected, margin=margin, selection=selection)
        res = evaluate(emb, photos)
        rows.append({"margin": margin, "flip": use_flip, "selection": selection,
                     "top1": res["top1"]["correct"], "auc": round(res["auc"], 5),
                     "open_set_rejection": round(res["open_set"]["rejection"], 4),
                     "accept_threshold": round(res["open_set"]["accept_threshold"], 4)})
    recognizer.embedder.flip = flip
    return rows


if __name__ == "__main__":
    sys.exit(main())
