"""End-to-end cost of the serving path on a warm stack, against the in-process recognizer
measured in the same run on the same machine (bars: docs/benchmarks.md).

    make up                      # or: python -m deploy.stack up
    python -m bench.e2e --url http://127.0.0.1:8000

1. Latency of one request at a time: ``POST /api/v1/recognitions`` on the stack vs
   ``Recognizer.recognize`` of the same bytes in this process, interleaved so both see
   the same machine. Bars: p50 ≤ in-process p50 + 60 ms; p99 ≤ in-process p99 + 200 ms.
2. Saturation throughput: the reference protocol (``POST /``) with enough concurrent
   clients to keep every worker busy, vs the in-process recognizer run by as many
   processes as the workers have cores (one torch thread each, like the workers) at
   batch 1 (``recognize``) and at each ``--batches`` size (``recognize_many``), in
   many short interleaved rounds, each stack round rated from its first to its last
   completion. Bars against in-process at batch 1 (pooled over the rounds): a stack
   without batching ≥ 0.85 ×; a batching stack (FACEFLEET_BATCH_MAX > 1, read from
   its state file) ≥ 1.15 ×. The ratio to the best in-process batch is reported too.

Same cores: when the stack was started with ``FACEFLEET_WORKER_CPUS`` and
``FACEFLEET_SERVICE_CPUS`` (recorded in its state file), the in-process recognizers
run pinned to the workers' CPUs and this process's HTTP clients to the service CPUs,
so both sides of the ratio get the same recognition cores, and moto's server and the
web tier (which stand in for AWS and the web instance) do not take them. Unpinned, the
ratio also charges the recognizer for the embedded AWS sharing its cores.

The in-process recognizer is built from the same settings (environment) as the stack,
so it loads the same weights and gallery. Writes ``results/e2e.json`` and
``results/e2e.png`` and prints a one-line verdict; exit 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from bench.common import RESULTS_DIR, new_figure, percentile, save_figure, summary, write_json
from bench.workload import run_workload, summarize
from config.settings import Settings
from config.stack import StackSettings
from deploy.stack import STATE_FILE
from recognition.pipeline import Recognizer, torch_device

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared/data/cse546/face_images_1000.zip"
P50_BAR_S, P99_BAR_S, THROUGHPUT_BAR = 0.060, 0.200, 0.85
#: A batching stack must beat a loop over single images (the batching issue's bar).
BATCHED_THROUGHPUT_BAR = 1.15


def load_image(path: Path | None) -> tuple[str, bytes]:
    """The probe image: ``path``, or ``test_000.jpg`` from the CSE546 zip."""
    if path is not None:
        return path.name, path.read_bytes()
    if not DEFAULT_ZIP.exists():
        raise SystemExit(f"error: no --image given and {DEFAULT_ZIP} is absent")
    with zipfile.ZipFile(DEFAULT_ZIP) as archive:
        return "test_000.jpg", archive.read("face_images_1000/test_000.jpg")


def stats(values: Sequence[float]) -> dict[str, float]:
    """mean/p50/p95/p99/min/max of seconds."""
    return {"mean": sum(values) / len(values), "p50": percentile(values, 50),
            "p95": percentile(values, 95), "p99": percentile(values, 99),
            "min": min(values), "max": max(values)}


@dataclass(frozen=True)
class Pinning:
    """CPUs of the stack's workers and of its services (None: not pinned)."""

    workers: frozenset[int] | None = None
    services: frozenset[int] | None = None


def read_state(state_file: Path) -> dict[str, Any]:
    """The stack's state file ({} when there is none, e.g. a stack started elsewhere)."""
    return json.loads(state_file.read_text()) if state_file.exists() else {}


def stack_pinning(state: dict[str, Any]) -> tuple[Pinning, bool]:
    """The stack's pinning from its state, and whether its worker processes really run
    on those CPUs (checked by PID)."""
    cpus = state.get("cpus") or {}
    pinning = Pinning(*(frozenset(cpus[k]) if cpus.get(k) else None
                        for k in ("workers", "services")))
    pids = [p["pid"] for p in state.get("processes", [])
            if p["name"].startswith(("worker-", "runner"))]
    try:
        held = bool(pids) and pinning.workers is not None and all(
            os.sched_getaffinity(pid) == pinning.workers for pid in pids)
    except OSError:  # a worker is gone: the state file is stale
        held = False
    return pinning, held


@contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the calling thread (and threads it starts) on ``cpus``; restore afterwards."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def single_latency(url: str, recognizer: Any, name: str, data: bytes, n: int,
                   warmup: int, pinning: Pinning) -> dict[str, Any]:
    """Interleave n stack requests and n in-process recognitions; seconds per call."""
    session = requests.Session()
    stack, local, breakdown = [], [], []
    for i in tqdm(range(warmup + n), desc="single requests", unit="req", file=sys.stderr):
        with pinned(pinning.workers):
            started = time.perf_counter()
            recognizer.recognize(data)
            in_process = time.perf_counter() - started
        started = time.perf_counter()
        with pinned(pinning.services):
            response = session.post(url + "/api/v1/recognitions",
                                    files={"image": (name, data)}, timeout=60)
        through_stack = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"error: the stack answered {response.status_code}: "
                             f"{response.text[:300]}")
        if i >= warmup:
            local.append(in_process)
            stack.append(through_stack)
            breakdown.append(response.json().get("timings", {}))
    session.close()
    keys = sorted({k for t in breakdown for k in t})
    medians = {k: percentile([t[k] for t in breakdown if k in t], 50) for k in keys}
    return {"n": n, "stack_s": stats(stack), "in_process_s": stats(local),
            "stack_timings_median_s": medians, "stack_samples_s": stack,
            "in_process_samples_s": local}


_RECOGNIZER: Any = None
_BARRIER: Any = None


def _load_recognizer(cpus: frozenset[int] | None, data: bytes, barrier: Any) -> None:
    """Pool initializer: pin, load a recognizer (1 torch thread, as the workers), warm it."""
    global _RECOGNIZER, _BARRIER
    if cpus is not None:
        os.sched_setaffinity(0, cpus)

    _RECOGNIZER = Recognizer.from_settings(Settings.from_env())
    _BARRIER = barrier
    for _ in range(3):
        _RECOGNIZER.recognize(data)


def _recognize_for(args: tuple[bytes, float, int]) -> tuple[int, float, float]:
    """Recognise flat out for ``duration`` s, ``batch`` images per call (1: the single
    image ``recognize``); the barrier makes every process take one."""
    data, duration, batch = args
    _BARRIER.wait(timeout=600)
    count, started = 0, time.perf_counter()
    datas = [data] * batch
    while time.perf_counter() - started < duration:
        if batch == 1:
            _RECOGNIZER.recognize(data)
        else:
            _RECOGNIZER.recognize_many(datas)
        count += batch
    return count, started, time.perf_counter()


def steady_rate(completions: Sequence[float]) -> float:
    """Completions per second between the first and the last completion of a round.

    A round through the stack starts with the pipeline empty (the first image still has
    to cross HTTP, S3 and SQS before a worker can start on it) and ends with it
    draining; counting from the first completion to the last leaves out that fill and
    drain, which the in-process loop does not pay, so short rounds are not biased.
    """
    if len(completions) < 2:
        raise ValueError(f"a steady rate needs at least 2 completions, got {len(completions)}")
    span = max(completions) - min(completions)
    if span <= 0:
        raise ValueError("completions must span a positive time")
    return (len(completions) - 1) / span


def saturation(url: str, name: str, data: bytes, processes: int, pinning: Pinning,
               rounds: int, duration: float, requests_: int, concurrency: int,
               batches: Sequence[int] = (1,)) -> dict[str, Any]:
    """Interleaved rounds: ``processes`` in-process recognizers flat out for ``duration``
    s at each batch size of ``batches`` (1 always first), then ``requests_ / rounds``
    requests through the stack at ``concurrency`` clients.

    A shared machine's speed drifts by 10-20 % within a minute (docs/benchmarks.md), so
    many short rounds let both sides sample the same drift. Each stack round is rated by
    :func:`steady_rate`; the ratio is the pooled stack rate over the pooled
    in-process rate, with each round's ratio kept.
    """
    ctx = multiprocessing.get_context("spawn")  # torch must not cross a fork
    barrier = ctx.Barrier(processes)
    per_round = max(2, requests_ // rounds)
    sizes = [1, *sorted(set(batches) - {1})]
    by_batch: dict[int, list[float]] = {size: [] for size in sizes}
    local = by_batch[1]
    stack: list[dict[str, Any]] = []
    with ctx.Pool(processes, initializer=_load_recognizer,
                  initargs=(pinning.workers, data, barrier)) as pool:
        with pinned(pinning.services):  # warm every worker and keep-alive connection
            run_workload(url + "/", [(name, data)], {}, 2 * concurrency, concurrency,
                         progress=False)
        for _ in tqdm(range(rounds), desc="saturation rounds", unit="round",
                      file=sys.stderr):
            for size in sizes:
                parts = pool.map(_recognize_for, [(data, duration, size)] * processes,
                                 chunksize=1)
                by_batch[size].append(sum(count / (end - start) for count, start, end in parts))
            completions: list[float] = []

            def done(outcome: Any, completions: list[float] = completions) -> None:
                if outcome.completed:
                    completions.append(time.perf_counter())

            with pinned(pinning.services):
                outcomes, seconds = run_workload(url + "/", [(name, data)], {}, per_round,
                                                 concurrency, progress=False, on_result=done)
            counts = summarize(outcomes, seconds)
            rate = steady_rate(completions) if len(completions) >= 2 else 0.0
            stack.append({"requests": per_round, "seconds": seconds, "rps": rate,
                          "completed": len(completions), "failed": counts["failed"],
                          "latencies_s": [o.latency for o in outcomes if o.completed]})
    # Pooled: every round's completion intervals over every round's steady time.
    rated = [r for r in stack if r["rps"]]
    steady = sum((r["completed"] - 1) / r["rps"] for r in rated)
    stack_rps = sum(r["completed"] - 1 for r in rated) / steady if steady else 0.0
    local_rps = sum(local) / len(local)
    ratios = [r["rps"] / rate for r, rate in zip(stack, local, strict=True)]
    batch_rps = {size: sum(rates) / len(rates) for size, rates in by_batch.items()}
    best = max(batch_rps, key=lambda size: batch_rps[size])
    return {
        "rounds": rounds, "concurrency": concurrency,
        "in_process": {"processes": processes, "duration_s": duration,
                       "cpus": sorted(pinning.workers) if pinning.workers else None,
                       "round_rps": local, "rps": local_rps,
                       "batches": {str(size): {"round_rps": by_batch[size],
                                               "rps": batch_rps[size]} for size in sizes},
                       "best_batch": best, "best_rps": batch_rps[best]},
        "stack": {"requests": per_round * rounds, "rounds": stack, "rps": stack_rps,
                  "failed": sum(r["failed"] for r in stack),
                  # Every request of the rounds, each waiting behind the other clients'.
                  "latency_s": stats([v for r in stack for v in r["latencies_s"]] or [0.0])},
        "round_ratios": ratios, "ratio": stack_rps / local_rps,
        "ratio_to_best_batch": stack_rps / batch_rps[best],
    }


def plot(result: dict[str, Any], out: Path) -> Path:
    """Latency CDFs (left) and throughput bars (right) to ``out/e2e.png``."""
    fig, axes = new_figure(1, 2)
    left, right = axes[0]
    single = result["single"]
    for key, label in (("in_process_samples_s", "in-process"), ("stack_samples_s", "stack")):
        values = sorted(1000 * v for v in single[key])
        left.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
    left.set_xlabel("latency of one request (ms)")
    left.set_ylabel("fraction of requests")
    left.set_title(f"p50 overhead {1000 * result['overhead_s']['p50']:.0f} ms "
                   f"(bar {1000 * P50_BAR_S:.0f}), p99 {1000 * result['overhead_s']['p99']:.0f}"
                   f" ms (bar {1000 * P99_BAR_S:.0f})")
    left.legend()
    sat = result["saturation"]
    bar = result["bars"]["throughput_ratio"]
    batches = sat["in_process"].get("batches", {"1": {"rps": sat["in_process"]["rps"]}})
    names = [f"in-process\nbatch {size}" for size in batches] + [
        f"stack\n(batch max {result.get('stack_batch_max', 1)})"]
    right.bar(names, [b["rps"] for b in batches.values()] + [sat["stack"]["rps"]],
              color=["#4c72b0"] * len(batches) + ["#55a868"])
    right.axhline(bar * sat["in_process"]["rps"], color="#c44e52", linestyle="--",
                  label=f"bar {bar:.2f}x in-process at batch 1")
    right.scatter([0] * len(sat["in_process"]["round_rps"]), sat["in_process"]["round_rps"],
                  color="black", zorder=3, s=12, label="one round")
    right.scatter([len(batches)] * len(sat["stack"]["rounds"]),
                  [r["rps"] for r in sat["stack"]["rounds"]], color="black", zorder=3, s=12)
    right.set_ylabel("images per second")
    right.set_title(f"saturation: stack / in-process = {sat['ratio']:.3f} "
                    f"(rounds {min(sat['round_ratios']):.2f}-{max(sat['round_ratios']):.2f})")
    right.legend()
    return save_figure(fig, "e2e", out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="warm stack's web tier")
    parser.add_argument("--image", type=Path, help="probe image (default CSE546 test_000)")
    parser.add_argument("--single", type=int, default=40, help="single-request samples")
    parser.add_argument("--warmup", type=int, default=5, help="samples discarded first")
    parser.add_argument("--requests", type=int, default=600,
                        help="saturation requests, split evenly over the rounds")
    parser.add_argument("--concurrency", type=int, default=16, help="saturation clients")
    parser.add_argument("--cores", type=int,
                        help="in-process recognizer processes (default: the workers' CPUs "
                             "when pinned, else every CPU)")
    parser.add_argument("--duration", type=float, default=4.0,
                        help="seconds the in-process recognizers run in each round")
    parser.add_argument("--rounds", type=int, default=12,
                        help="interleaved in-process / stack saturation rounds")
    parser.add_argument("--batches", default="1,8,16",
                        help="in-process batch sizes measured in every round (comma-"
                             "separated; 1 is always measured)")
    parser.add_argument("--state", type=Path,
                        help="the stack's state file, for its CPU pinning "
                             "(default: FACEFLEET_STACK_DIR/state.json)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    args = parser.parse_args(argv)
    for option in ("single", "requests", "concurrency", "cores", "rounds"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option} must be at least 1, got {value}")
    if args.warmup < 0 or args.duration <= 0:
        parser.error("--warmup must be >= 0 and --duration > 0")
    try:
        args.batches = sorted({int(part) for part in args.batches.split(",") if part.strip()})
    except ValueError:
        parser.error(f"--batches must be comma-separated whole numbers, got {args.batches!r}")
    if not args.batches or min(args.batches) < 1 or max(args.batches) > 256:
        parser.error("--batches must hold sizes from 1 to 256")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements; 0 when every bar is met, 1 otherwise."""
    args = parse_args(argv)
    url = args.url.rstrip("/")
    try:
        health = requests.get(url + "/healthz", timeout=10)
    except requests.ConnectionError:
        print(f"error: nothing answers at {url}; start the stack with `make up`",
              file=sys.stderr)
        return 2
    if health.status_code != 200:
        print(f"error: the stack is not healthy: {health.text[:300]}", file=sys.stderr)
        return 2
    name, data = load_image(args.image)

    state_file = args.state or StackSettings.from_env().state_dir / STATE_FILE
    state = read_state(state_file)
    pinning, held = stack_pinning(state)
    if pinning.workers is not None and not held:
        print(f"error: {state_file} says the workers run on CPUs {sorted(pinning.workers)} "
              "but they do not (or are gone); restart the stack", file=sys.stderr)
        return 2
    cores = args.cores or (len(pinning.workers) if pinning.workers else os.cpu_count() or 1)
    recognizer = Recognizer.from_settings(Settings.from_env())
    recognizer_device = torch_device(Settings.from_env().device)  # the device it ran on
    single = single_latency(url, recognizer, name, data, args.single, args.warmup, pinning)
    del recognizer  # free its cores' memory before the throughput runs
    sat = saturation(url, name, data, cores, pinning, args.rounds, args.duration,
                     args.requests, args.concurrency, args.batches)
    in_process, stack, ratio = sat["in_process"], sat["stack"], sat["ratio"]
    overhead = {q: single["stack_s"][q] - single["in_process_s"][q] for q in ("p50", "p99")}
    batch_max = int((state.get("pool") or {}).get("batch_max") or 1)
    throughput_bar = BATCHED_THROUGHPUT_BAR if batch_max > 1 else THROUGHPUT_BAR
    result = {
        "url": url, "image": name, "cores": cores, "stack_workers": state.get("pool"),
        "stack_batch_max": batch_max, "device": recognizer_device,
        "pinning": {"workers": sorted(pinning.workers) if pinning.workers else None,
                    "services": sorted(pinning.services) if pinning.services else None},
        "single": single, "overhead_s": overhead,
        "saturation": sat,
        "bars": {"p50_overhead_s": P50_BAR_S, "p99_overhead_s": P99_BAR_S,
                 "throughput_ratio": throughput_bar},
        "passed": {"p50": overhead["p50"] <= P50_BAR_S, "p99": overhead["p99"] <= P99_BAR_S,
                   "throughput": ratio >= throughput_bar and stack["failed"] == 0},
    }
    json_path = write_json("e2e", result, args.out)
    plot(result, args.out)
    ok = all(result["passed"].values())
    where = (f"workers on CPUs {sorted(pinning.workers)}" if pinning.workers
             else "unpinned, all parts share every CPU")
    summary("e2e", f"[{where}] single request p50 {1000 * single['stack_s']['p50']:.0f} "
          f"ms vs in-process {1000 * single['in_process_s']['p50']:.0f} ms "
          f"(+{1000 * overhead['p50']:.0f}, bar "
          f"+60), p99 +{1000 * overhead['p99']:.0f} ms (bar +200); saturation "
          f"{stack['rps']:.1f} vs {in_process['rps']:.1f} img/s = {ratio:.3f}x (bar "
          f"{throughput_bar:g}; rounds {min(sat['round_ratios']):.2f}-"
          f"{max(sat['round_ratios']):.2f}), {sat['ratio_to_best_batch']:.3f}x in-process "
          f"at its best batch {in_process['best_batch']}; stack batch max {batch_max}, "
          f"{recognizer_device} -> {json_path}", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
