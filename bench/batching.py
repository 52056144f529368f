"""Dynamic batching swept: throughput and latency against the batch maximum and wait.

    python -m bench.batching [--batches 1,4,8,16] [--waits 0.01,0.05] [--quick]

For each (``FACEFLEET_BATCH_MAX``, ``FACEFLEET_BATCH_WAIT``) it starts the pinned fixed
stack of the end-to-end benchmark (one worker on CPU 1; moto, the web tier and the
clients on CPU 0; docs/benchmarks.md), runs ``python -m bench.e2e`` against it (single
requests interleaved with the in-process recognizer; saturation rounds interleaved
with the in-process recognizer at batch 1 and at the stack's batch size), and stops it.
Batch 1 is the stack without batching (the threads pool of two, as the e2e pinned
run). So every ratio is measured in one run on the same cores.

Bars (the batching issue): the best batched configuration's saturation throughput ≥
1.15 × the in-process recognizer at batch 1; its single-request latency ≤ +60 ms p50 /
+200 ms p99 over in-process. Writes ``results/batching.json`` and
``results/batching.png`` (throughput, and p50/p99 latency at one client and at
saturation, against the batch maximum; one line per wait) and prints one line.

Needs port 8000 free and no stack of this user up (it starts and stops its own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.common import RESULTS_DIR, new_figure, save_figure, summary, write_json
from bench.e2e import BATCHED_THROUGHPUT_BAR, P50_BAR_S, P99_BAR_S

ROOT = Path(__file__).resolve().parents[1]
URL = "http://127.0.0.1:8000"
#: The e2e pinned stack (docs/benchmarks.md, "Pinned run").
PINNED = {"FACEFLEET_AUTOSCALE": "false", "FACEFLEET_WORKERS": "1",
          "FACEFLEET_WORKER_CPUS": "1", "FACEFLEET_SERVICE_CPUS": "0"}


def configs(batches: Sequence[int], waits: Sequence[float]) -> list[tuple[int, float]]:
    """The (batch max, wait) pairs to run: batch 1 once (it never waits)."""
    out: list[tuple[int, float]] = []
    for batch in sorted(set(batches)):
        for wait in (sorted(set(waits)) if batch > 1 else [0.0]):
            out.append((batch, wait))
    return out


def stack_env(batch: int, wait: float, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of one configuration's stack (and of its e2e run)."""
    env = {key: value for key, value in base.items()
           if not key.startswith(("FACEFLEET_BATCH_", "FACEFLEET_WORKER_POOL",
                                  "FACEFLEET_WORKER_CONCURRENCY"))}
    env.update(PINNED)
    if batch > 1:  # the pool and its concurrency follow (2 x batch threads)
        env.update(FACEFLEET_BATCH_MAX=str(batch), FACEFLEET_BATCH_WAIT=f"{wait:g}")
    else:
        env.update(FACEFLEET_WORKER_POOL="threads", FACEFLEET_WORKER_CONCURRENCY="2")
    return env


def figures(batch: int, wait: float, e2e: Mapping[str, Any]) -> dict[str, Any]:
    """One configuration's row, from bench.e2e's JSON."""
    sat, single = e2e["saturation"], e2e["single"]
    in_process = sat["in_process"]
    return {
        "batch_max": batch, "batch_wait_s": wait,
        "stack_rps": sat["stack"]["rps"], "failed": sat["stack"]["failed"],
        "in_process_rps": in_process["rps"],
        "in_process_best_batch": in_process.get("best_batch", 1),
        "in_process_best_rps": in_process.get("best_rps", in_process["rps"]),
        "ratio": sat["ratio"], "ratio_to_best_batch": sat.get("ratio_to_best_batch"),
        "round_ratios": sat["round_ratios"],
        "single_p50_s": single["stack_s"]["p50"], "single_p99_s": single["stack_s"]["p99"],
        "in_process_p50_s": single["in_process_s"]["p50"],
        "in_process_p99_s": single["in_process_s"]["p99"],
        "overhead_s": e2e["overhead_s"],
        "saturation_latency_s": sat["stack"].get("latency_s"),
        "device": e2e.get("device"),
    }


def verdict(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The best batched configuration and whether it meets the bars."""
    batched = [r for r in rows if r["batch_max"] > 1]
    if not batched:
        return {"best": None, "passed": False}
    best = max(batched, key=lambda r: r["ratio"])
    passed = {"throughput": best["ratio"] >= BATCHED_THROUGHPUT_BAR and best["failed"] == 0,
              "p50": best["overhead_s"]["p50"] <= P50_BAR_S,
              "p99": best["overhead_s"]["p99"] <= P99_BAR_S}
    return {"best": best, "passed": passed}


@contextmanager
def running_stack(env: Mapping[str, str]) -> Iterator[None]:
    """``deploy.stack up`` with ``env``; always ``down`` afterwards."""
    up = subprocess.run([sys.executable, "-m", "deploy.stack", "up"], cwd=ROOT, env=dict(env),
                        capture_output=True, text=True, timeout=600)
    try:
        if up.returncode != 0:
            raise SystemExit(f"error: the stack did not start:\n{up.stdout[-2000:]}"
                             f"{up.stderr[-2000:]}")
        yield
    finally:
        subprocess.run([sys.executable, "-m", "deploy.stack", "down"], cwd=ROOT,
                       env=dict(env), capture_output=True, timeout=300)


def run_e2e(env: Mapping[str, str], batch: int, args: argparse.Namespace,
            out: Path) -> dict[str, Any]:
    """``python -m bench.e2e`` against the running stack; its JSON."""
    command = [sys.executable, "-m", "bench.e2e", "--url", URL, "--out", str(out),
               "--single", str(args.single), "--rounds", str(args.rounds),
               "--requests", str(args.requests), "--duration", str(args.duration),
               "--concurrency", str(max(16, 4 * batch)), "--batches", f"1,{batch}"]
    done = subprocess.run(command, cwd=ROOT, env=dict(env), capture_output=True, text=True,
                          timeout=3600)
    path = out / "e2e.json"
    if not path.exists():
        raise SystemExit(f"error: bench.e2e wrote no result (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def plot(rows: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """Throughput, one-client overhead over in-process, and latency at saturation,
    against the batch maximum (one line per wait)."""
    fig, axes = new_figure(1, 3, size=(16, 4.8))
    left, middle, right = axes[0]
    waits = sorted({r["batch_wait_s"] for r in rows if r["batch_max"] > 1})
    base = [r for r in rows if r["batch_max"] == 1]
    for wait in waits:
        line = base + sorted((r for r in rows if r["batch_max"] > 1
                              and r["batch_wait_s"] == wait), key=lambda r: r["batch_max"])
        xs = [r["batch_max"] for r in line]
        tag = f"wait {1000 * wait:g} ms"
        left.plot(xs, [r["stack_rps"] for r in line], marker="o", label=f"stack, {tag}")
        middle.plot(xs, [1000 * r["overhead_s"]["p50"] for r in line], marker="o",
                    label=f"p50, {tag}")
        middle.plot(xs, [1000 * r["overhead_s"]["p99"] for r in line], marker="x",
                    linestyle=":", label=f"p99, {tag}")
        for q, style in (("p50", "-"), ("p99", ":")):
            right.plot(xs, [(r["saturation_latency_s"] or {}).get(q, 0) for r in line],
                       marker="s", linestyle=style, label=f"{q}, {tag}")
    in_process = sum(r["in_process_rps"] for r in rows) / len(rows)
    left.axhline(in_process, color="#4c72b0", linestyle="--",
                 label=f"in-process batch 1 (mean of runs) {in_process:.1f}")
    left.axhline(BATCHED_THROUGHPUT_BAR * in_process, color="#c44e52", linestyle=":",
                 label=f"bar {BATCHED_THROUGHPUT_BAR}x")
    batched = [r for r in rows if r["batch_max"] > 1]
    left.scatter([r["batch_max"] for r in batched], [r["in_process_best_rps"] for r in batched],
                 color="#4c72b0", marker="^", zorder=3, label="in-process at that batch")
    middle.axhline(1000 * P50_BAR_S, color="#c44e52", linestyle="--", label="p50 bar")
    middle.axhline(1000 * P99_BAR_S, color="#c44e52", linestyle=":", label="p99 bar")
    for axis, title, ylabel in (
            (left, "saturation throughput, one worker core", "images per second"),
            (middle, "one client: stack over in-process", "added latency (ms)"),
            (right, "latency at saturation (4 x batch clients)", "seconds")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("FACEFLEET_BATCH_MAX")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.legend(fontsize=7)
    return save_figure(fig, "batching", out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.batching", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,4,8,16", help="batch maxima (comma-separated)")
    parser.add_argument("--waits", default="0.01,0.05", help="batch waits in seconds")
    parser.add_argument("--single", type=int, default=40, help="single requests per run")
    parser.add_argument("--rounds", type=int, default=6, help="saturation rounds per run")
    parser.add_argument("--requests", type=int, default=480, help="saturation requests per run")
    parser.add_argument("--duration", type=float, default=4.0,
                        help="in-process seconds per batch size per round")
    parser.add_argument("--quick", action="store_true",
                        help="batch 1 and 8, wait 0.05 s, fewer samples (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.waits = "1,8", "0.05"
        args.single, args.rounds, args.requests = 15, 3, 180
    try:
        args.batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
        args.waits = sorted({float(w) for w in args.waits.split(",") if w.strip()})
    except ValueError:
        parser.error("--batches takes whole numbers and --waits seconds, comma-separated")
    if not args.batches or min(args.batches) < 1 or max(args.batches) > 256:
        parser.error("--batches must hold sizes from 1 to 256")
    if not args.waits or min(args.waits) < 0 or max(args.waits) > 5:
        parser.error("--waits must hold seconds from 0 to 5")
    if min(args.single, args.rounds, args.requests) < 1 or args.duration <= 0:
        parser.error("--single, --rounds and --requests must be ≥ 1, --duration > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every configuration; 0 when the best batched one meets the bars."""
    args = parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("error: the pinned stack needs CPUs 0 and 1", file=sys.stderr)
        return 2
    status = subprocess.run([sys.executable, "-m", "deploy.stack", "status"], cwd=ROOT,
                            capture_output=True, timeout=60)
    if status.returncode == 0:
        print("error: a stack is up; `make down` first (this benchmark starts its own)",
              file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    plan = configs(args.batches, args.waits)
    with tempfile.TemporaryDirectory(prefix="facefleet-batching-") as tmp:
        for batch, wait in tqdm(plan, desc="configurations", unit="stack", file=sys.stderr):
            env = stack_env(batch, wait, os.environ)
            out = Path(tmp) / f"b{batch}-w{wait:g}"
            with running_stack(env):
                rows.append(figures(batch, wait, run_e2e(env, batch, args, out)))
    judged = verdict(rows)
    result: dict[str, Any] = {"configurations": rows, "verdict": judged,
              "bars": {"throughput_ratio": BATCHED_THROUGHPUT_BAR, "p50_overhead_s": P50_BAR_S,
                       "p99_overhead_s": P99_BAR_S},
              "settings": {k: getattr(args, k) for k in ("single", "rounds", "requests",
                                                         "duration", "quick")}}
    json_path = write_json("batching", result, args.out)
    plot(rows, args.out)
    best = judged["best"]
    ok = bool(best) and all(judged["passed"].values())
    unbatched = next((r for r in rows if r["batch_max"] == 1), None)
    text = "no batched configuration measured"
    if best:
        text = (f"best batch max {best['batch_max']} wait {1000 * best['batch_wait_s']:g} ms: "
                f"{best['stack_rps']:.1f} img/s = {best['ratio']:.3f}x in-process at batch 1 "
                f"(bar {BATCHED_THROUGHPUT_BAR}), {best['ratio_to_best_batch']:.3f}x at its "
                f"best batch {best['in_process_best_batch']}; one client +"
                f"{1000 * best['overhead_s']['p50']:.0f} ms p50 / +"
                f"{1000 * best['overhead_s']['p99']:.0f} ms p99 (bars +60/+200)")
        if unbatched:
            text += f"; unbatched stack {unbatched['ratio']:.3f}x"
    summary("batching", f"{text}; {best['device'] if best else ''} -> {json_path}", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
