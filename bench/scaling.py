"""Autoscaling acceptance on the embedded stack (bars: docs/benchmarks.md).

    python -m bench.scaling            # 1000 requests at 100 clients; max 15, 4, 2, 1; kill run
    python -m bench.scaling --quick    # 200 requests at 40 clients (while others share the CPU)

Starts its own embedded stack on free loopback ports (moto, provisioning, the gunicorn
web tier, no workers), enrols the ten distinct CSE546 images under their labels (through
the HTTP API, served by an autoscaled worker), warms the web tier with one short
unmeasured burst, then for each maximum starts the
autoscaler (controller + embedded runner, a fresh role so the fleet starts with 0
instances) and fires the CSE546 burst with ``bench.workload`` while sampling instances by
state and the queue depth every 0.25 s. The same burst is then repeated at the largest
maximum with the controller SIGKILLed and restarted mid-burst.

Checked: instances rise to the maximum and never exceed it; the queue goes 0 → up → 0;
0 failed and all correct; first result ≤ 5 s after the first request; 0 instances
running ≤ 2 s after the last result; throughput at the largest maximum ≥ 0.9 × the best
of all maxima; the kill run loses nothing. Writes ``results/scaling.json`` and
``results/scaling.png`` (instances and queue over time; throughput by maximum).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from autoscaler.ec2 import Ec2Fleet
from autoscaler.metrics import read_queue_load
from bench.common import RESULTS_DIR, new_figure, save_figure, summary, write_json
from bench.workload import Outcome, load_images, load_labels, run_workload, summarize
from config import aws
from config.autoscaler import AutoscalerSettings
from config.serving import ServingSettings
from config.settings import Settings
from config.stack import StackSettings
from config.web import WebSettings
from deploy.embedded_aws import free_port
from deploy.stack import (
    Proc,
    autoscaler_ready,
    child_env,
    spawn_autoscaler,
    spawn_controller,
    start,
    stop_processes,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cse546"
FIRST_RESULT_BAR_S = 5.0
SCALE_IN_BAR_S = 2.0
THROUGHPUT_BAR = 0.9
# Each sample is a DescribeInstances, which costs moto much CPU (docs/benchmarks.md): 4 Hz
# keeps the timing bars' resolution (≤ 0.25 s) without taking a noticeable share of the
# CPU from the system under test.
SAMPLE_EVERY_S = 0.25


class ScalingError(RuntimeError):
    """The benchmark could not run (a part did not start, data missing)."""


@dataclass
class EmbeddedStack:
    """moto + provisioned resources + the web tier, and the environment workers need."""

    settings: Settings
    url: str
    worker_env: dict[str, str]
    procs: list[Proc]
    logs: Path
    worker_nice: int = 0


@contextmanager
def embedded_stack(state_dir: Path, timeout: float = 180.0) -> Iterator[EmbeddedStack]:
    """The embedded stack of ``deploy.stack`` on free loopback ports, with no workers."""
    env = {**os.environ, "FACEFLEET_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    settings = Settings.from_env(env)
    web = replace(WebSettings.from_env(), bind=f"127.0.0.1:{free_port()}")
    stack = StackSettings(workers=0, autoscale=False, state_dir=state_dir,
                          start_timeout=timeout,
                          worker_nice=StackSettings.from_env(env).worker_nice)
    state = start(settings, ServingSettings.from_env(), stack, web, say=lambda _: None)
    procs = [Proc(**p) for p in state["processes"]]
    try:
        yield EmbeddedStack(settings, str(state["web"]), child_env(settings, state["weights"]),
                            procs, state_dir / "logs", stack.worker_nice)
    finally:
        stop_processes(procs)


@dataclass
class Autoscaler:
    """A running controller + runner for one role."""

    role: str
    max_instances: int
    env: dict[str, str]
    logs: Path
    procs: list[Proc] = field(default_factory=list)

    def controller(self) -> Proc:
        """The controller process."""
        return next(p for p in self.procs if p.name == "controller")


@contextmanager
def autoscaler(stack: EmbeddedStack, role: str, max_instances: int,
               timeout: float = 180.0) -> Iterator[Autoscaler]:
    """Start the controller and runner for ``role`` and wait until the runner is ready."""
    env = {**stack.worker_env, "FACEFLEET_ROLE": role,
           "FACEFLEET_MAX_INSTANCES": str(max_instances)}
    logs = stack.logs / role
    logs.mkdir(parents=True, exist_ok=True)
    scaler = Autoscaler(role, max_instances, env, logs,
                        spawn_autoscaler(env, logs, worker_nice=stack.worker_nice))
    try:
        deadline = time.monotonic() + timeout
        while not autoscaler_ready(scaler.procs):
            dead = [p for p in scaler.procs if not p.alive()]
            if dead or time.monotonic() > deadline:
                raise ScalingError(f"the autoscaler did not start; see {logs}")
            time.sleep(0.2)
        yield scaler
    finally:
        stop_processes(scaler.procs)


class Sampler:
    """Samples instances by state and the queue depth every ``every`` seconds."""

    def __init__(self, settings: Settings, role: str, max_instances: int,
                 every: float = SAMPLE_EVERY_S) -> None:
        self.fleet = Ec2Fleet(aws.ec2_client(settings),
                              AutoscalerSettings(role=role, max_instances=max_instances))
        self.sqs = aws.sqs_client(settings)
        self.queue_url = self.sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
        self.every = every
        self.t0 = time.perf_counter()
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def sample(self) -> dict[str, float]:
        """One reading: seconds since ``t0``, instances per state, visible, in flight."""
        states = [i.state for i in self.fleet.list()]
        load = read_queue_load(self.sqs, self.queue_url)
        return {"t": round(time.perf_counter() - self.t0, 3),
                **{s: states.count(s) for s in ("pending", "running", "stopping", "stopped")},
                "visible": load.visible, "in_flight": load.in_flight}

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.samples.append(self.sample())
            self._stop.wait(max(0.0, self.every - (time.perf_counter() - started)))

    def start(self, t0: float) -> None:
        """Start sampling; times are seconds after ``t0`` (a perf_counter reading)."""
        self.t0 = t0
        self._thread.start()

    def stop(self) -> list[dict[str, float]]:
        """Stop and return the samples."""
        self._stop.set()
        self._thread.join(10)
        return self.samples


def distinct_images(images: Sequence[tuple[str, bytes]], labels: dict[str, str]
                    ) -> dict[str, list[tuple[str, bytes]]]:
    """label → its distinct photos (one per distinct image content), in file order."""
    seen: set[bytes] = set()
    by_label: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in images:
        if data in seen:
            continue
        seen.add(data)
        label = labels[Path(name).stem]
        by_label.setdefault(label, []).append((name, data))
    return by_label


def enrol(stack: EmbeddedStack, by_label: dict[str, list[tuple[str, bytes]]]) -> None:
    """Enrol every distinct photo under its label through the HTTP API (an autoscaled
    worker of its own role does the embedding)."""
    with autoscaler(stack, "scaling-enrol", 1):
        for label, photos in by_label.items():
            files = [("image", (name, io.BytesIO(data), "image/jpeg")) for name, data in photos]
            headers = {"X-API-Key": stack.settings.api_key} if stack.settings.api_key else {}
            r = requests.post(f"{stack.url}/api/v1/identities/{label}/images", files=files,
                              headers=headers, timeout=300)
            if r.status_code != 201:
                raise ScalingError(f"enrolling {label}: HTTP {r.status_code} {r.text[:200]}")


def analyse(before: dict[str, float], samples: Sequence[dict[str, float]],
            result_times: Sequence[float], max_instances: int) -> dict[str, Any]:
    """The scaling figures of one burst (pure). ``before`` is the sample taken just
    before the first request; ``result_times`` are seconds after the first request, in
    completion order; sample times share that origin."""
    active = [s["pending"] + s["running"] for s in samples]
    depth = [s["visible"] + s["in_flight"] for s in samples]
    first = min(result_times) if result_times else float("nan")
    last = max(result_times) if result_times else float("nan")
    # The first sample after the last result from which no instance runs any more.
    zero_at = None
    for i, s in enumerate(samples):
        if s["t"] >= last and all(a == 0 for a in active[i:]):
            zero_at = s["t"]
            break
    return {
        "first_result_s": first,
        "last_result_s": last,
        "zero_running_after_s": None if zero_at is None else round(zero_at - last, 3),
        "peak_instances": max(active, default=0),
        "peak_running": max((s["running"] for s in samples), default=0),
        "reached_max": max(active, default=0) == max_instances,
        "never_above_max": all(a <= max_instances for a in active),
        "queue_start": before["visible"] + before["in_flight"],
        "queue_peak": max(depth, default=0),
        "queue_end": depth[-1] if depth else None,
    }


def checks(figures: dict[str, Any], result: dict[str, Any]) -> dict[str, bool]:
    """Pass/fail of every bar of one burst."""
    zero = figures["zero_running_after_s"]
    return {
        "reached_max": figures["reached_max"],
        "never_above_max": figures["never_above_max"],
        "queue_0_up_0": figures["queue_start"] == 0 and figures["queue_peak"] > 0
        and figures["queue_end"] == 0,
        "no_failures": result["failed"] == 0,
        "all_correct": result["correct"] == result["requests"],
        "first_result": figures["first_result_s"] <= FIRST_RESULT_BAR_S,
        "scale_in": zero is not None and zero <= SCALE_IN_BAR_S,
    }


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICKS


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process tree (live descendants included),
    plus this process (the clients) as ``bench``."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int) -> float:
        return stats.get(pid, (0, 0.0))[1] + sum(tree(c) for c in children.get(pid, []))

    times = os.times()
    return {**{name: round(tree(pid), 2) for name, pid in roots.items()},
            "bench": round(times.user + times.system, 2)}


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def burst(stack: EmbeddedStack, role: str, max_instances: int,
          images: Sequence[tuple[str, bytes]], labels: dict[str, str], n: int, clients: int,
          kill_at: float | None = None, kill_gap_s: float = 1.0, progress: bool = True,
          settle_s: float = 30.0) -> dict[str, Any]:
    """One burst from an empty fleet of ``role``; SIGKILL and restart the controller once
    ``kill_at`` of the requests have completed (None: never)."""
    with autoscaler(stack, role, max_instances) as scaler:
        sampler = Sampler(stack.settings, role, max_instances)
        # Messages a previous burst left in flight would show here (and be its loss).
        before = sampler.sample()
        idle_before = before["pending"] + before["running"] == 0 and \
            before["visible"] + before["in_flight"] == 0
        times: list[float] = []
        killed: dict[str, float] = {}
        roots = {p.name: p.pid for p in stack.procs + scaler.procs if p.name != "controller"}
        cpu_before = cpu_seconds(roots)
        t0 = time.perf_counter()

        def on_result(_: Outcome) -> None:
            times.append(time.perf_counter() - t0)
            if kill_at is not None and not killed and len(times) >= kill_at * n:
                killed["at_s"] = time.perf_counter() - t0
                threading.Thread(target=_kill_and_restart, args=(scaler, kill_gap_s, killed,
                                                                 t0), daemon=True).start()

        sampler.start(t0)
        outcomes, duration = run_workload(stack.url + "/", images, labels, n, clients,
                                          timeout=300, progress=progress, on_result=on_result)
        cpu = _cpu_delta(cpu_before, cpu_seconds(roots))  # during the requests
        _wait_idle(sampler, settle_s)
        time.sleep(0.5)  # a few samples past the end: it stays at zero
        samples = sampler.stop()
    result = {"concurrency": clients, **summarize(outcomes, duration)}
    figures = analyse(before, samples, times, max_instances)
    run: dict[str, Any] = {"role": role, "max": max_instances, "result": result, **figures,
                           "before": before, "cpu_s": cpu,
                           "checks": {"idle_before": idle_before, **checks(figures, result)},
                           "samples": samples}
    if kill_at is not None:
        run["controller_killed"] = killed
    return run


def _kill_and_restart(scaler: Autoscaler, gap_s: float, record: dict[str, float],
                      t0: float) -> None:
    """SIGKILL the controller (no cleanup of any kind), wait ``gap_s``, start a new one."""
    old = scaler.controller()
    os.kill(old.pid, signal.SIGKILL)
    stop_processes([old], timeout=5)  # only reaps it: it is already gone
    time.sleep(gap_s)
    fresh = spawn_controller(scaler.env, scaler.logs)
    scaler.procs = [p for p in scaler.procs if p is not old] + [fresh]
    record["restarted_at_s"] = time.perf_counter() - t0


def _wait_idle(sampler: Sampler, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = sampler.samples[-1] if sampler.samples else None
        if last and last["pending"] + last["running"] == 0 and \
                last["visible"] + last["in_flight"] == 0:
            return
        time.sleep(SAMPLE_EVERY_S)


def plot(runs: Sequence[dict[str, Any]], throughput: dict[int, float], out: Path) -> Path:
    """Instances and queue depth over time (acceptance and kill runs); throughput by max."""
    timelines = [r for r in runs if r["kind"] in ("acceptance", "kill")]
    fig, axes = new_figure(1, len(timelines) + 1, size=(6 * (len(timelines) + 1), 4.5))
    for ax, run in zip(axes[0], timelines, strict=False):
        t = [s["t"] for s in run["samples"]]
        ax.step(t, [s["running"] for s in run["samples"]], where="post", label="running",
                color="#4c72b0")
        ax.step(t, [s["pending"] for s in run["samples"]], where="post", label="pending",
                color="#dd8452")
        ax.axhline(run["max"], color="grey", linestyle=":", label=f"max {run['max']}")
        ax.set_xlabel("seconds after the first request")
        ax.set_ylabel("instances")
        q = ax.twinx()
        q.plot(t, [s["visible"] + s["in_flight"] for s in run["samples"]], color="#55a868",
               alpha=0.7, label="queue (visible + in flight)")
        q.set_ylabel("messages")
        if run["kind"] == "kill":
            kill = run.get("controller_killed", {})
            for key, style in (("at_s", "--"), ("restarted_at_s", "-.")):
                if key in kill:
                    ax.axvline(kill[key], color="#c44e52", linestyle=style,
                               label="controller " + ("killed" if key == "at_s" else "restarted"))
        ax.axvline(run["last_result_s"], color="black", linestyle="--", linewidth=0.8,
                   label="last result")
        lines = ax.get_legend_handles_labels()
        qlines = q.get_legend_handles_labels()
        ax.legend(lines[0] + qlines[0], lines[1] + qlines[1], fontsize=7, loc="upper right")
        ax.set_title(f"{run['kind']}: {run['result']['requests']} requests, "
                     f"{run['result']['concurrency']} clients, max {run['max']}")
    ax = axes[0][-1]
    maxes = sorted(throughput)
    ax.bar([str(m) for m in maxes], [throughput[m] for m in maxes], color="#4c72b0")
    ax.set_xlabel("maximum instances")
    ax.set_ylabel("throughput (requests/s)")
    ax.set_title("burst throughput by maximum")
    return save_figure(fig, out.stem, out.parent)


def run_all(data: Path, n: int, clients: int, maxes: Sequence[int], kill: bool,
            state_dir: Path, progress: bool = True,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every burst of the benchmark on one embedded stack; returns the JSON payload."""
    images = load_images(data / "face_images_1000.zip")
    labels = load_labels(data / "labels_1000.csv")
    top = max(maxes)
    runs: list[dict[str, Any]] = []
    with embedded_stack(state_dir) as stack:
        say(f"stack up at {stack.url}; enrolling the distinct images")
        enrol(stack, distinct_images(images, labels))
        # The web tier's first burst pays its own warm-up (its connection pools grow to
        # the client count: the queue then fills over ~10 s instead of at once), which
        # is not the fleet's doing; one short unmeasured burst takes it out of the runs.
        warm = min(n, 2 * clients)
        say(f"warm-up burst (not measured): {warm} requests, {clients} clients")
        run = burst(stack, "scaling-warmup", top, images, labels, warm, clients,
                    progress=progress)
        run["kind"] = "warmup"
        runs.append(run)
        order = [top, *sorted((m for m in set(maxes) if m != top), reverse=True)]
        for m in order:
            say(f"burst: {n} requests, {clients} clients, max {m}")
            run = burst(stack, f"scaling-max{m}", m, images, labels, n, clients,
                        progress=progress)
            run["kind"] = "acceptance" if m == top else "sweep"
            runs.append(run)
        if kill:
            say(f"burst with the controller killed and restarted: max {top}")
            run = burst(stack, f"scaling-kill{top}", top, images, labels, n, clients,
                        kill_at=0.3, progress=progress)
            run["kind"] = "kill"
            runs.append(run)
    throughput = {r["max"]: r["result"]["throughput_rps"] for r in runs
                  if r["kind"] in ("acceptance", "sweep")}
    best_max = max(throughput, key=lambda m: throughput[m])
    ratio = throughput[top] / throughput[best_max]
    return {"requests": n, "clients": clients, "maxes": list(maxes),
            "sample_every_s": SAMPLE_EVERY_S, "runs": runs,
            "throughput_by_max": throughput, "best_max": best_max,
            "top_vs_best": ratio, "throughput_ok": ratio >= THROUGHPUT_BAR}


def headline(payload: dict[str, Any]) -> tuple[str, bool]:
    """The one-line summary and the overall verdict."""
    acc = next(r for r in payload["runs"] if r["kind"] == "acceptance")
    res = acc["result"]
    text = (f"max {acc['max']}: peak {acc['peak_instances']} instances, queue 0→"
            f"{acc['queue_peak']}→{acc['queue_end']}, {res['failed']} failed, "
            f"{res['correct']}/{res['requests']} correct, first result "
            f"{acc['first_result_s']:.2f} s, 0 running {acc['zero_running_after_s']} s after "
            f"the last; {res['throughput_rps']:.1f} req/s = {payload['top_vs_best']:.2f}× best "
            f"(max {payload['best_max']})")
    ok = all(acc["checks"].values()) and payload["throughput_ok"]
    kill = next((r for r in payload["runs"] if r["kind"] == "kill"), None)
    if kill is not None:
        kres = kill["result"]
        lost_ok = kres["failed"] == 0 and kres["correct"] == kres["requests"]
        text += (f"; controller killed+restarted: {kres['failed']} failed, "
                 f"{kres['correct']}/{kres['requests']} correct, peak {kill['peak_instances']}")
        ok = ok and lost_ok and kill["checks"]["never_above_max"] and kill["checks"]["scale_in"]
    return text, ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with face_images_1000.zip and labels_1000.csv")
    parser.add_argument("--quick", action="store_true",
                        help="200 requests at 40 clients (a shared CPU)")
    parser.add_argument("-n", "--requests", type=int, help="requests per burst (1000)")
    parser.add_argument("-c", "--clients", type=int, help="concurrent clients (100)")
    parser.add_argument("--maxes", default="15,4,2,1",
                        help="comma-separated maxima; the largest is the acceptance run")
    parser.add_argument("--no-kill", action="store_true", help="skip the controller-kill run")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    args.requests = args.requests or (200 if args.quick else 1000)
    args.clients = args.clients or (40 if args.quick else 100)
    try:
        args.maxes = [int(m) for m in args.maxes.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--maxes must be comma-separated integers, not {args.maxes!r}")
    if not args.maxes or min(args.maxes) < 1 or args.requests < 1 or args.clients < 1:
        parser.error("--maxes, -n and -c must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every bar holds."""
    args = parse_args(argv)
    if not (args.data / "face_images_1000.zip").exists():
        print(f"error: no face_images_1000.zip in {args.data} (give --data)", file=sys.stderr)
        return 2
    results = args.out or RESULTS_DIR
    logs = results / "scaling-logs"  # every process's log of the last run, for a post-mortem
    shutil.rmtree(logs, ignore_errors=True)
    try:
        payload = run_all(args.data, args.requests, args.clients, args.maxes,
                          not args.no_kill, logs,
                          progress=not args.no_progress and sys.stderr.isatty())
    except ScalingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    payload["quick"] = args.quick
    payload["logs"] = str(logs)
    write_json("scaling", payload, results)
    out = results / "scaling.png"
    plot(payload["runs"], payload["throughput_by_max"], out)
    for run in payload["runs"]:
        res = run["result"]
        failed = [k for k, v in run["checks"].items() if not v]
        print(f"  {run['kind']:<10} max {run['max']:>2}: {res['throughput_rps']:5.1f} req/s, "
              f"peak {run['peak_instances']:>2}, queue peak {run['queue_peak']:>3}, "
              f"{res['failed']} failed, {res['correct']}/{res['requests']} correct, first "
              f"{run['first_result_s']:.2f} s, to zero {run['zero_running_after_s']} s; CPU s "
              f"{run['cpu_s']}"
              + (f"; failed checks: {', '.join(failed)}" if failed else ""))
    text, ok = headline(payload)
    summary("scaling", text, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
