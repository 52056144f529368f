"""Workload generator speaking the reference protocol (``POST /`` with ``inputFile``).

    python -m bench.workload --url http://127.0.0.1:8000 \\
        --images ../shared/data/cse546/face_images_1000.zip \\
        --labels ../shared/data/cse546/labels_1000.csv -n 1000 -c 100

Fires N requests through C client threads (each with its own keep-alive session),
retries connection errors like the reference client, shows a progress bar, then
prints completed / failed / correct / wrong, latency mean/p50/p95/p99 and throughput,
and writes ``results/workload-<time>.json`` plus a latency histogram PNG. Exit status
1 when any request failed or was wrong.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from tqdm import tqdm

from bench.common import new_figure, percentile, save_figure

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


class WorkloadError(Exception):
    """Bad input to the generator (missing folder, empty zip, bad CSV)."""


@dataclass(frozen=True)
class Outcome:
    """One request: what was sent, what came back, how long it took (seconds)."""

    image: str
    status: int | None        # HTTP status, None when no response arrived
    body: str
    latency: float            # first attempt's start to the final answer
    attempts: int
    expected: str | None
    error: str | None = None

    @property
    def completed(self) -> bool:
        """HTTP 200 with a ``<stem>:<label>`` body."""
        return self.status == 200 and ":" in self.body

    @property
    def label(self) -> str | None:
        """The text after the colon (None unless completed)."""
        return self.body.split(":", 1)[1].strip() if self.completed else None

    @property
    def correct(self) -> bool:
        """Completed, for the right stem, with the CSV's label."""
        if not self.completed or self.expected is None:
            return False
        stem = self.body.split(":", 1)[0]
        return stem == PurePosixPath(self.image).stem and self.label == self.expected


def load_images(source: Path) -> list[tuple[str, bytes]]:
    """(file name, bytes) for every image in a folder or a zip, sorted by name."""
    if not source.exists():
        raise WorkloadError(f"{source} does not exist; give a folder of images or a .zip")
    items: list[tuple[str, bytes]] = []
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                items.append((path.name, path.read_bytes()))
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                name = PurePosixPath(info.filename).name
                if not info.is_dir() and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES:
                    items.append((name, archive.read(info)))
    else:
        raise WorkloadError(f"{source} is neither a folder nor a zip file")
    if not items:
        raise WorkloadError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
    return items


def load_labels(path: Path) -> dict[str, str]:
    """Expected label per image stem, from an ``Image,Results`` CSV."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise WorkloadError(f"cannot read labels {path}: {exc.strerror}") from None
    if not rows or [c.strip() for c in rows[0][:2]] != ["Image", "Results"]:
        raise WorkloadError(f"{path} must start with the header 'Image,Results'")
    labels = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise WorkloadError(f"{path}:{number}: expected 'stem,label', got {row!r}")
        labels[PurePosixPath(row[0].strip()).stem] = row[1].strip()
    return labels


def summarize(outcomes: Sequence[Outcome], duration: float) -> dict[str, Any]:
    """Counts, latency statistics (seconds) and throughput (requests/s) of a run."""
    done = [o for o in outcomes if o.completed]
    latencies = [o.latency for o in done]
    return {
        "requests": len(outcomes),
        "completed": len(done),
        "failed": len(outcomes) - len(done),
        "correct": sum(o.correct for o in outcomes),
        "wrong": sum(o.completed and not o.correct for o in outcomes),
        "retried": sum(o.attempts > 1 for o in outcomes),
        "duration_s": duration,
        "throughput_rps": len(done) / duration if duration > 0 else math.nan,
        "latency_s": {
            "mean": sum(latencies) / len(latencies) if latencies else math.nan,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else math.nan,
        },
    }


def post_once(session: requests.Session, url: str, name: str, data: bytes, expected: str | None,
              timeout: float, retries: int, backoff: float = 0.2) -> Outcome:
    """POST one image, retrying connection errors up to ``retries`` times."""
    started = time.perf_counter()
    error = None
    for attempt in range(1, retries + 2):
        try:
            response = session.post(url, files={"inputFile": (name, data)}, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempt <= retries and not isinstance(exc, requests.ReadTimeout):
                time.sleep(backoff * attempt)
                continue
            return Outcome(name, None, "", time.perf_counter() - started, attempt, expected,
                           error)
        return Outcome(name, response.status_code, response.text.strip(),
                       time.perf_counter() - started, attempt, expected)
    raise AssertionError("unreachable")  # the loop always returns


def run_workload(url: str, images: Sequence[tuple[str, bytes]], labels: dict[str, str], n: int,
                 concurrency: int, *, timeout: float = 120.0, retries: int = 5,
                 progress: bool = True,
                 on_result: Callable[[Outcome], None] | None = None,
                 ) -> tuple[list[Outcome], float]:
    """Send ``n`` requests (cycling through ``images``) through ``concurrency`` threads.

    Returns the outcomes in request order and the wall time in seconds.
    """
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            # One keep-alive connection per client thread, like 100 browsers.
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1)
            local.session.mount("http://", adapter)
            with lock:
                sessions.append(local.session)
        session: requests.Session = local.session
        return session

    def one(i: int) -> Outcome:
        name, data = images[i % len(images)]
        return post_once(session(), url, name, data, labels.get(PurePosixPath(name).stem),
                         timeout, retries)

    outcomes: list[Outcome | None] = [None] * n
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="client") as pool, \
            tqdm(total=n, disable=not progress, unit="req", file=sys.stderr) as bar:
        futures = {pool.submit(one, i): i for i in range(n)}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[futures[future]] = outcome
            if on_result is not None:
                on_result(outcome)
            bar.update(1)
    duration = time.perf_counter() - started
    for s in sessions:
        s.close()
    return [o for o in outcomes if o is not None], duration


def write_results(summary: dict[str, Any], outcomes: Sequence[Outcome], out_dir: Path,
                  tag: str) -> tuple[Path, Path]:
    """Write ``<tag>.json`` (summary + per-request outcomes) and ``<tag>.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{tag}.json"
    failures = [asdict(o) for o in outcomes if not o.completed][:50]
    wrong = [asdict(o) for o in outcomes if o.completed and not o.correct][:50]
    json_path.write_text(json.dumps({**summary, "failures": failures, "wrong_answers": wrong,
                                     "latencies_s": [o.latency for o in outcomes]},
                                    indent=2) + "\n")
    latencies_ms = [1000 * o.latency for o in outcomes if o.completed]
    fig, axes = new_figure(size=(8, 4.5))
    ax = axes[0][0]
    if latencies_ms:
        ax.hist(latencies_ms, bins=50, color="#4c72b0")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            value = percentile(latencies_ms, q)
            ax.axvline(value, color="#c44e52", linestyle=style, label=f"p{q} {value:.0f} ms")
        ax.legend()
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"{summary['requests']} requests, {summary['concurrency']} clients: "
                 f"{summary['throughput_rps']:.1f} req/s, {summary['failed']} failed")
    return json_path, save_figure(fig, tag, out_dir)


def one_line(summary: dict[str, Any]) -> str:
    """The summary a person reads at the end of a run."""
    lat = summary["latency_s"]
    return (f"{summary['requests']} requests, {summary['concurrency']} clients: "
            f"completed {summary['completed']}, failed {summary['failed']}, correct "
            f"{summary['correct']}, wrong {summary['wrong']}; latency mean "
            f"{1000 * lat['mean']:.0f} ms, p50 {1000 * lat['p50']:.0f} ms, p95 "
            f"{1000 * lat['p95']:.0f} ms, p99 {1000 * lat['p99']:.0f} ms; "
            f"{summary['throughput_rps']:.1f} req/s in {summary['duration_s']:.1f} s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="web tier base URL")
    parser.add_argument("--images", type=Path, required=True, help="folder or .zip of images")
    parser.add_argument("--labels", type=Path, help="Image,Results CSV of expected labels")
    parser.add_argument("-n", "--requests", type=int, default=1000, help="requests to send")
    parser.add_argument("-c", "--concurrency", type=int, default=100, help="client threads")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request seconds")
    parser.add_argument("--retries", type=int, default=5, help="retries on connection errors")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("-n and -c must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workload; 0 when every request completed correctly, 1 otherwise, 2 on bad input."""
    args = parse_args(argv)
    try:
        images = load_images(args.images)
        labels = load_labels(args.labels) if args.labels else {}
    except WorkloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + "/"
    outcomes, duration = run_workload(url, images, labels, args.requests, args.concurrency,
                                      timeout=args.timeout, retries=args.retries,
                                      progress=not args.no_progress and sys.stderr.isatty())
    summary = {"url": url, "images": str(args.images), "concurrency": args.concurrency,
               **summarize(outcomes, duration)}
    tag = time.strftime("workload-%Y%m%d-%H%M%S")
    json_path, png_path = write_results(summary, outcomes, args.out, tag)
    print(one_line(summary))
    print(f"wrote {json_path} and {png_path}")
    if args.labels is None:
        return 0 if summary["failed"] == 0 else 1
    return 0 if summary["failed"] == 0 and summary["wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
