"""Recognizer speed: preloaded + batched vs the naive per-request reference.

    python -m bench.recognizer [--images 32] [--naive 6] [--batches 1,4,8,16]

In one run, on the same images (the 5-celebrity val photos, cycled) and gallery (the
train photos enrolled):

* naive reference: for every image a fresh Recognizer — weights verified and loaded,
  MTCNN and InceptionResnetV1 constructed, gallery loaded — then one recognition, as
  the original ``face_recognition.py`` did per request;
* preloaded: one Recognizer built once; latency per image with ``recognize`` (batch 1),
  and throughput with ``recognize_many`` at each batch size (all faces of the batch
  in one embedder pass).

Bar: best preloaded throughput ≥ 3 × the naive reference's. Also reports the resident
memory (RSS, and its peak) of a separate process holding a loaded recognizer. Writes
``results/recognizer.json`` and ``results/recognizer.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.common import new_figure, percentile, save_figure, summary, write_json
from config.settings import Settings
from recognition.pipeline import Recognizer
from recognition.weights.sdist import celebrity_dataset

BAR_SPEEDUP = 3.0

_RSS_PROBE = r"""
import json, sys
from dataclasses import replace
from pathlib import Path
from config.settings import Settings
from recognition.pipeline import Recognizer

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}

settings = replace(Settings.from_env(), gallery=sys.argv[1])
before = status()
recognizer = Recognizer.from_settings(settings)
loaded = status()
recognizer.recognize(Path(sys.argv[2]).read_bytes())
after = status()
print(json.dumps({"python_start_mib": before["VmRSS"], "loaded_mib": loaded["VmRSS"],
                  "after_first_image_mib": after["VmRSS"], "peak_mib": after["VmHWM"]}))
"""


def measure_rss(gallery: Path, image: Path) -> dict[str, int]:
    """RSS (MiB) of a fresh process before/after loading a Recognizer and one image."""
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(gallery), str(image)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"memory probe failed: {out.stderr.strip()[-500:]}")
    rss: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return rss


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 when the speed-up bar is met."""
    parser = argparse.ArgumentParser(prog="python -m bench.recognizer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32,
                        help="images per preloaded measurement (default 32)")
    parser.add_argument("--naive", type=int, default=6,
                        help="images for the naive reference (default 6)")
    parser.add_argument("--batches", default="1,4,8,16", help="batch sizes (default 1,4,8,16)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]

    base = Settings.from_env()
    data_root = celebrity_dataset(base.cache_dir)
    val = sorted((data_root / "val").glob("*/*"))
    images = [val[i % len(val)].read_bytes() for i in range(max(args.images, args.naive))]

    with tempfile.TemporaryDirectory() as tmp:
        gallery = Path(tmp) / "gallery.json"
        settings = replace(base, gallery=str(gallery))
        recognizer = Recognizer.from_settings(settings)
        for folder in sorted((data_root / "train").iterdir()):
            photos = [(p.read_bytes(), p.name) for p in sorted(folder.iterdir())]
            recognizer.enroll(folder.name, photos)

        # Naive: everything rebuilt per image (same settings, same gallery file).
        naive_times = []
        for data in tqdm(images[:args.naive], desc="naive", file=sys.stderr):
            start = time.perf_counter()
            Recognizer.from_settings(settings).recognize(data)
            naive_times.append(time.perf_counter() - start)

        recognizer.recognize(images[0])  # warm-up: first-call allocations
        latencies = []
        for data in tqdm(images[:args.images], desc="latency b=1", file=sys.stderr):
            start = time.perf_counter()
            recognizer.recognize(data)
            latencies.append(time.perf_counter() - start)

        throughput = {}
        for size in batches:
            count = (args.images // size) * size or size
            start = time.perf_counter()
            for i in tqdm(range(0, count, size), desc=f"batch {size}", file=sys.stderr):
                recognizer.recognize_many([images[(i + k) % len(images)] for k in range(size)])
            throughput[size] = count / (time.perf_counter() - start)

        rss = measure_rss(gallery, val[0])

    naive_tput = len(naive_times) / sum(naive_times)
    best_size = max(throughput, key=lambda s: throughput[s])
    speedup = throughput[best_size] / naive_tput
    ok = speedup >= BAR_SPEEDUP
    payload: dict[str, Any] = {
        "torch_threads": settings.torch_threads,
        "images": {"preloaded": args.images, "naive": args.naive, "source": "5-celebrity val"},
        "naive": {"seconds_per_image": naive_times, "throughput": naive_tput,
                  "mean_s": statistics.fmean(naive_times)},
        "latency_b1": {"mean_s": statistics.fmean(latencies),
                       "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
                       "samples": latencies},
        "throughput": {str(k): v for k, v in throughput.items()},
        "best_batch": best_size, "speedup": speedup, "bar_speedup": BAR_SPEEDUP, "pass": ok,
        "rss_mib": rss,
    }
    json_path = write_json("recognizer", payload)
    png_path = _plot(naive_tput, throughput, latencies, naive_times)
    summary("recognizer", (
        f"naive {naive_tput:.2f} img/s, preloaded "
        + ", ".join(f"b{k} {v:.2f}" for k, v in throughput.items())
        + f" img/s; best {speedup:.1f}x naive (bar {BAR_SPEEDUP}x); latency p50 "
        f"{payload['latency_b1']['p50_s'] * 1000:.0f} ms; RSS {rss['after_first_image_mib']} "
        f"MiB -> {json_path}, {png_path}"), ok)
    return 0 if ok else 1


def _plot(naive: float, throughput: dict[int, float], latencies: list[float],
          naive_times: list[float]) -> Path:
    fig, axes = new_figure(1, 2)
    ax = axes[0][0]
    labels = ["naive", *(f"batch {k}" for k in throughput)]
    values = [naive, *throughput.values()]
    ax.bar(labels, values, color=["grey", *["tab:blue"] * len(throughput)])
    for x, v in enumerate(values):
        ax.text(x, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set(ylabel="images / second", title="Throughput: naive vs preloaded recognizer")
    ax = axes[0][1]
    ax.boxplot([np.array(latencies) * 1000, np.array(naive_times) * 1000])
    ax.set_xticks([1, 2], ["preloaded b=1", "naive"])
    ax.set(ylabel="ms per image", title="Latency per image", yscale="log")
    return save_figure(fig, "recognizer")


if __name__ == "__main__":
    sys.exit(main())
