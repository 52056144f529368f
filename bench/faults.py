"""Fault injection under load: the reference workload while parts of the system break.

    FACEFLEET_FAULT_PROXY=true make up     # the stack, with the fault proxy before moto
    python -m bench.faults                 # 1000 requests at 100 clients per fault
    python -m bench.faults --quick         # 200 at 30, to try it

One scenario per fault, each the CSE546 reference images sent through the documented
client (bench/client.py: retries on 503 + Retry-After and on connection errors, polls
the Location of a 504). The fault starts once a fifth of the requests are answered:

- ``worker-kill``: three worker processes SIGKILLed at random moments;
- ``runner-kill`` / ``controller-kill``: the embedded runner (its workers follow it) or
  the controller SIGKILLed; the stack restarts it, as systemd does on an instance;
- ``web-restart``: the web tier stopped (SIGTERM) and started again by the stack;
- ``latency`` / ``resets`` / ``throttling``: through the fault proxy
  (deploy/faultproxy.py) between every process and the AWS endpoint, from a fifth to
  seven tenths of the run: added latency, connection resets, and SQS
  ``RequestThrottled``, S3 ``SlowDown`` and ``InternalError`` answers;
- ``poison``: a message that is not a task and a task whose S3 input vanished, sent
  into the request queue mid-run.

For each: requests sent, answered correctly, answered with a retryable error (5xx with
``Retry-After`` when the client's budget ran out), wrong, other errors, **lost** (never
answered and no result in S3 for any id it was given), and the recovery time (from the
fault's start to the end of the last request sent after it that failed or took more
than twice the baseline's p95). Bars: 0 lost, 0 wrong, 0 other errors.
Writes results/faults.json and results/faults.png; exit 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from tqdm import tqdm

from bench.client import Attempted, classify, count, is_lost, recognise
from bench.common import new_figure, percentile, save_figure, summary, write_json
from bench.overload import ensure_enrolled
from bench.workload import load_images, load_labels
from config.aws import s3_client, sqs_client
from config.settings import Settings
from config.stack import StackSettings
from deploy.faultproxy import FaultControl
from tasks.results import fetch_result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cse546"
#: When faults start and (proxy faults) end, as fractions of the requests answered.
START, END = 0.2, 0.7


@dataclass
class Stack:
    """The running stack, from its state file."""

    state: dict[str, Any]
    settings: Settings

    def pid(self, name: str) -> int:
        for proc in self.state_now()["processes"]:
            if proc["name"] == name:
                return int(proc["pid"])
        raise KeyError(f"no {name!r} process in the stack's state")

    def state_now(self) -> dict[str, Any]:
        # Re-read: the stack records a restarted service's new PID.
        path = StackSettings.from_env().state_dir / "state.json"
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    @property
    def web(self) -> str:
        return str(self.state["web"])


# ---- the faults -------------------------------------------------------------------


def set_faults(stack: Stack, faults: list[dict[str, Any]]) -> None:
    """Switch the fault proxy's faults (an empty list clears them)."""
    FaultControl(str(stack.settings.aws_endpoint)).set(faults, seed=random.randrange(1 << 30))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in path.read_text().split()]
        except OSError:
            continue
    return found


def _workers(stack: Stack) -> list[int]:
    """PIDs of the runner's worker processes (its direct children)."""
    return _children(stack.pid("runner"))


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    if pid <= 0:  # never a process group
        raise ValueError(f"not a process id: {pid}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_a_worker(stack: Stack) -> None:
    workers = _workers(stack)
    if workers:  # none while the fleet is at zero: nothing to kill
        _kill(random.choice(workers))


def _poison(stack: Stack) -> None:
    """A message that is no task, and a real task whose input is not in S3."""
    from tasks.factory import RECOGNIZE, make_app
    from tasks.keys import image_key, new_request_id

    sqs = sqs_client(stack.settings, "interactive")
    url = sqs.get_queue_url(QueueName=stack.settings.queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="this is not a task message")
    request_id = new_request_id()
    app = make_app(stack.settings)
    app.send_task(RECOGNIZE, args=[stack.settings.input_bucket,
                                   image_key(request_id, "vanished.jpg"), request_id,
                                   "vanished"], task_id=request_id)


@dataclass(frozen=True)
class Fault:
    """One scenario: what starts at START (and, for proxy faults, stops at END)."""

    name: str
    what: str
    start: Callable[[Stack], None] | None = None
    stop: Callable[[Stack], None] | None = None
    #: More moments (fractions) at which ``start`` runs again (worker kills).
    again: tuple[float, ...] = ()


def _proxy(*faults: dict[str, Any]) -> Callable[[Stack], None]:
    return lambda stack: set_faults(stack, list(faults))


def _clear(stack: Stack) -> None:
    set_faults(stack, [])


FAULTS: tuple[Fault, ...] = (
    Fault("none", "no fault (baseline)"),
    Fault("worker-kill", "a worker process SIGKILLed, three times",
          _kill_a_worker, again=(0.45, 0.7)),
    Fault("runner-kill", "the embedded runner SIGKILLed (its workers follow it)",
          lambda s: _kill(s.pid("runner"))),
    Fault("controller-kill", "the autoscaler's controller SIGKILLed",
          lambda s: _kill(s.pid("controller"))),
    Fault("web-restart", "the web tier stopped (SIGTERM) and restarted",
          lambda s: _kill(s.pid("web"), signal.SIGTERM)),
    Fault("latency", "+100 ms (±50) on every AWS call",
          _proxy({"kind": "latency", "p": 1.0, "delay_ms": 100, "jitter_ms": 50}), _clear),
    Fault("resets", "5 % of AWS connections reset",
          _proxy({"kind": "reset", "p": 0.05}), _clear),
    Fault("throttling", "SQS RequestThrottled 10 %, S3 SlowDown 10 %, InternalError 2 %",
          _proxy({"kind": "throttle", "p": 0.10, "service": "sqs"},
                 {"kind": "throttle", "p": 0.10, "service": "s3"},
                 {"kind": "error", "p": 0.02}), _clear),
    Fault("poison", "a non-task message and a task whose S3 input vanished", _poison),
)


# ---- one scenario -------------------------------------------------------------------


@dataclass
class Scenario:
    """What one fault's run produced."""

    fault: Fault
    outcomes: list[Attempted]
    lost: list[bool]
    fault_at: float | None
    duration: float

    def recovery(self, normal: float) -> float:
        """Seconds from the fault's start to the end of the last request sent after it
        that failed or took longer than ``normal``."""
        if self.fault_at is None:
            return 0.0
        slow = [o.finished for o in self.outcomes
                if o.sent >= self.fault_at and (classify(o) != "correct"
                                                or o.latency > normal)]
        return max(slow) - self.fault_at if slow else 0.0


def run_scenario(stack: Stack, fault: Fault, images: Sequence[tuple[str, bytes]],
                 labels: dict[str, str], n: int, clients: int, progress: bool) -> Scenario:
    """Send ``n`` requests through ``clients`` threads, injecting ``fault`` on the way."""
    done = 0
    lock = threading.Lock()
    moments = sorted({START, *fault.again} if fault.start else set())
    fired: list[float] = []
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        s: requests.Session = local.session
        return s

    def one(i: int) -> Attempted:
        name, data = images[i % len(images)]
        return recognise(session(), stack.web, name, data,
                         labels.get(PurePosixPath(name).stem))

    def maybe_inject() -> None:
        fraction = done / n
        while moments and fraction >= moments[0]:
            moments.pop(0)
            fired.append(time.monotonic())
            assert fault.start is not None
            fault.start(stack)
        if fault.stop is not None and fired and fraction >= END:
            fault.stop(stack)

    outcomes: list[Attempted] = []
    started = time.monotonic()
    with ThreadPoolExecutor(clients, thread_name_prefix="client") as pool, \
            tqdm(total=n, disable=not progress, unit="req", desc=fault.name,
                 file=sys.stderr) as bar:
        futures = [pool.submit(one, i) for i in range(n)]
        for future in as_completed(futures):
            outcomes.append(future.result())
            with lock:
                done += 1
                maybe_inject()
            bar.update(1)
    if fault.stop is not None:
        fault.stop(stack)
    duration = time.monotonic() - started
    s3 = s3_client(stack.settings, "interactive")

    def has_result(request_id: str) -> bool:
        stored = fetch_result(s3, stack.settings.output_bucket, request_id)
        return stored is not None and stored.ready

    lost = [is_lost(o, has_result) for o in outcomes]
    return Scenario(fault, outcomes, lost, fired[0] if fired else None, duration)


# ---- report -------------------------------------------------------------------------


def report(scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """The table: per fault, the counts, recovery time and whether its bars hold."""
    baseline = next((s for s in scenarios if s.fault.name == "none"), scenarios[0])
    latencies = [o.latency for o in baseline.outcomes if classify(o) == "correct"]
    normal = 2 * percentile(latencies, 95) if latencies else 30.0
    rows = []
    for scenario in scenarios:
        counts = count(scenario.outcomes, scenario.lost)
        ok = counts["lost"] == 0 and counts["wrong"] == 0 and counts["error"] == 0 \
            and counts["unanswered"] == 0
        # Every request that did not end correct, to see what it got.
        failures = [{"image": o.image, "kind": classify(o), "lost": lost,
                     "status": o.status, "error": o.error, "attempts": o.attempts,
                     "latency_s": round(o.latency, 2), "request_ids": o.request_ids}
                    for o, lost in zip(scenario.outcomes, scenario.lost, strict=True)
                    if classify(o) != "correct"]
        rows.append({"fault": scenario.fault.name, "what": scenario.fault.what, **counts,
                     "recovery_s": round(scenario.recovery(normal), 1),
                     "duration_s": round(scenario.duration, 1), "ok": ok,
                     "failures": failures})
    return {"normal_latency_s": normal, "faults": rows,
            "ok": all(r["ok"] for r in rows)}


def plot(table: dict[str, Any]) -> Path:
    fig, axes = new_figure(1, 2, size=(13, 4.5))
    rows = table["faults"]
    names = [r["fault"] for r in rows]
    bottom = [0.0] * len(rows)
    colours = {"correct": "tab:green", "retryable": "tab:orange", "wrong": "tab:red",
               "error": "tab:purple", "unanswered": "tab:gray"}
    for kind, colour in colours.items():
        values = [float(r[kind]) for r in rows]
        axes[0][0].bar(names, values, bottom=bottom, label=kind, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes[0][0].set_ylabel("requests")
    axes[0][0].set_title("final answer per request, by fault")
    axes[0][0].legend(fontsize=8)
    axes[0][0].tick_params(axis="x", rotation=35)
    axes[0][1].bar(names, [r["recovery_s"] for r in rows], color="tab:blue")
    axes[0][1].set_ylabel("seconds")
    axes[0][1].set_title("recovery: fault start to the last slow or failed request")
    axes[0][1].tick_params(axis="x", rotation=35)
    return save_figure(fig, "faults")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="requests per fault")
    parser.add_argument("-c", "--clients", type=int, default=100, help="concurrent clients")
    parser.add_argument("--quick", action="store_true", help="200 requests at 30 clients")
    parser.add_argument("--only", default="", help="comma-separated faults to run")
    parser.add_argument("--images", type=Path, default=SHARED / "face_images_1000.zip")
    parser.add_argument("--labels", type=Path, default=SHARED / "labels_1000.csv")
    parser.add_argument("--seed", type=int, default=546)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.clients = 200, 30
    known = {f.name for f in FAULTS}
    args.only = [name for name in args.only.split(",") if name]
    unknown = sorted(set(args.only) - known)
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if args.n < 10 or args.clients < 1:
        parser.error("-n must be at least 10 and -c at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    stack_settings = StackSettings.from_env()
    try:
        state = json.loads((stack_settings.state_dir / "state.json").read_text())
    except FileNotFoundError:
        print("no stack is up: start it with FACEFLEET_FAULT_PROXY=true make up",
              file=sys.stderr)
        return 2
    if not any(p["name"] == "faultproxy" for p in state["processes"]):
        print("the stack runs without the fault proxy: restart it with "
              "FACEFLEET_FAULT_PROXY=true make up", file=sys.stderr)
        return 2
    stack = Stack(state, Settings.from_env())
    images, labels = load_images(args.images), load_labels(args.labels)
    # Answers are checked against the labels: the gallery must know the ten people.
    ensure_enrolled(stack.web, images, labels, stack.settings.api_key,
                    lambda line: print(line, file=sys.stderr))
    progress = sys.stderr.isatty()
    scenarios = []
    for fault in FAULTS:
        if args.only and fault.name not in args.only and fault.name != "none":
            continue
        scenarios.append(run_scenario(stack, fault, images, labels, args.n, args.clients,
                                      progress))
    table = report(scenarios)
    write_json("faults", {"requests": args.n, "clients": args.clients, **table})
    plot(table)
    worst = max(table["faults"], key=lambda r: r["recovery_s"])
    lost = sum(r["lost"] for r in table["faults"])
    wrong = sum(r["wrong"] for r in table["faults"])
    errors = sum(r["error"] + r["unanswered"] for r in table["faults"])
    summary("faults", (f"{len(scenarios)} scenarios of {args.n} requests at "
                  f"{args.clients} clients: lost {lost}, wrong {wrong}, unclear errors "
                  f"{errors}; slowest recovery {worst['recovery_s']} s ({worst['fault']})"),
            table["ok"])
    return 0 if table["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
