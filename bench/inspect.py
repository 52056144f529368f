"""Benchmark: `inspect ping` round trip and event delay over SQS+SNS (embedded AWS).

Starts its own moto server on a free loopback port and two real ``celery worker``
processes of the monitoring test app (``tests/monitoring/app.py``, the same transport
and settings as the real app, without the model), then measures:

- ping round trip: ``app.control.inspect(destination=[w1, w2]).ping()`` from a warm
  client, send to both replies received (bar: p50 ≤ 1 s); and the wall time of the
  ``celery inspect ping`` command, process start included, for context;
- event delay: task-succeeded events from both workers, from the worker's event
  timestamp (task completion) to a listener's receipt (bar: p95 ≤ 2 s).

Run: ``.venv/bin/python -m bench.inspect [--pings 40] [--tasks 40]`` (``-m``: a file
named inspect.py must not shadow the standard library). Writes
``results/monitoring_inspect.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.common import new_figure, percentile, save_figure, summary, write_json
from deploy.embedded_aws import free_port, start_moto, stop_process
from tests.tasks.transport.conftest import HOST, Fleet, make_fleet, stop, wait_for

NAME = "monitoring_inspect"
PING_BAR_P50 = 1.0
EVENT_BAR_P95 = 2.0


def stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "mean": statistics.fmean(values), "p50": percentile(values, 50),
            "p95": percentile(values, 95), "max": max(values)}


def measure_pings(fleet: Fleet, count: int) -> list[float]:
    workers = [f"w1@{HOST}", f"w2@{HOST}"]
    fleet.app.control.inspect(destination=workers, timeout=5).ping()  # warm the reply pool
    rtts = []
    for _ in tqdm(range(count), desc="inspect ping", unit="call"):
        start = time.perf_counter()
        replies = fleet.app.control.inspect(destination=workers, timeout=5).ping() or {}
        rtts.append(time.perf_counter() - start)
        if set(replies) != set(workers):
            raise RuntimeError(f"ping got replies from {sorted(replies)} only")
    return rtts


def measure_cli(fleet: Fleet, count: int) -> list[float]:
    walls = []
    for _ in tqdm(range(count), desc="celery inspect ping (CLI)", unit="run"):
        start = time.perf_counter()
        result = fleet.celery("inspect", "ping", "-d", f"w1@{HOST},w2@{HOST}", "--timeout", "5")
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-500:])
    return walls


def measure_events(fleet: Fleet, count: int) -> dict[str, list[float]]:
    delays: dict[str, list[float]] = {}
    done = threading.Event()
    ready = threading.Event()

    def on_succeeded(event: dict[str, Any]) -> None:
        delays.setdefault(event["hostname"], []).append(event["local_received"]
                                                         - event["timestamp"])
        if sum(map(len, delays.values())) >= count:
            done.set()

    def heartbeat(event: dict[str, Any]) -> None:
        ready.set()

    def listen() -> None:
        with fleet.app.connection_for_read() as conn:
            recv = fleet.app.events.Receiver(conn, handlers={
                "task-succeeded": on_succeeded, "worker-heartbeat": heartbeat})
            for _ in recv.itercapture(limit=None, timeout=None, wakeup=True):
                if done.is_set():
                    break

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the event listener received no heartbeat in 60 s")
    for i in tqdm(range(count), desc="tasks", unit="task"):
        fleet.app.send_task("mon.add", (i, i), queue=fleet.queues[1 + i % 2])
        time.sleep(0.25)  # spread out: measure delay, not queueing
    if not done.wait(60):
        raise RuntimeError(f"only {sum(map(len, delays.values()))}/{count} events arrived")
    return delays


def plot(pings: list[float], cli: list[float], delays: dict[str, list[float]]) -> Path:
    fig, axes = new_figure(1, 2)
    left, right = axes[0]
    left.hist(pings, bins=20, color="tab:blue", label="in-process (warm client)")
    left.axvline(PING_BAR_P50, color="red", linestyle="--", label="bar: p50 ≤ 1 s")
    for wall in cli:
        left.axvline(wall, color="tab:gray", alpha=0.4)
    left.set(title="inspect ping round trip, 2 workers (grey: CLI runs)", xlabel="seconds",
             ylabel="calls")
    left.legend()
    for host, values in sorted(delays.items()):
        ordered = sorted(values)
        right.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=host)
    right.axvline(EVENT_BAR_P95, color="red", linestyle="--", label="bar: ≤ 2 s")
    right.set(title="task-succeeded: completion → listener", xlabel="seconds", ylabel="CDF")
    right.legend()
    return save_figure(fig, NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=40)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=40)
    args = parser.parse_args(argv)
    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="bench-inspect-"))
    moto = start_moto(port, log_path=logs / "moto.log")
    fleet = make_fleet(f"http://127.0.0.1:{port}", logs)
    try:
        fleet.start_worker("w1", fleet.queues[1])
        fleet.start_worker("w2", fleet.queues[2])
        wait_for(lambda: fleet.ping() >= {f"w1@{HOST}", f"w2@{HOST}"}, 120, "both workers")
        pings = measure_pings(fleet, args.pings)
        cli = measure_cli(fleet, args.cli_runs)
        delays = measure_events(fleet, args.tasks)
    except (RuntimeError, AssertionError, subprocess.SubprocessError) as exc:
        print(f"{NAME}: failed: {exc} (logs in {logs})", file=sys.stderr)
        return 1
    finally:
        for proc in fleet.workers.values():
            stop(proc)
        stop_process(moto)
    all_delays = [d for values in delays.values() for d in values]
    ping_stats, event_stats = stats(pings), stats(all_delays)
    ok = ping_stats["p50"] <= PING_BAR_P50 and event_stats["p95"] <= EVENT_BAR_P95
    write_json(NAME, {
        "bars": {"ping_p50_s": PING_BAR_P50, "event_delay_p95_s": EVENT_BAR_P95},
        "ping_round_trip_s": ping_stats, "ping_samples_s": pings,
        "cli_wall_s": stats(cli), "cli_samples_s": cli,
        "event_delay_s": event_stats,
        "event_delay_by_worker_s": {h: stats(v) for h, v in delays.items()},
        "event_samples_s": delays, "passed": ok,
    })
    plot(pings, cli, delays)
    summary(NAME, f"ping p50 {ping_stats['p50'] * 1000:.0f} ms (p95 "
            f"{ping_stats['p95'] * 1000:.0f} ms, CLI {statistics.median(cli):.2f} s); "
            f"event delay p50 {event_stats['p50'] * 1000:.0f} ms p95 "
            f"{event_stats['p95'] * 1000:.0f} ms over {len(all_delays)} events from "
            f"{len(delays)} workers", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
