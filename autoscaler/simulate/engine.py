"""The discrete-event engine: arrivals, one FIFO queue, instances that boot, serve one
request at a time and are stopped or terminated, and a policy ticking periodically.

Events are kept in a heap ordered by (time, sequence). Instances sit in slots 1..max,
so the fleet can never exceed max; ``run`` also checks it after every policy action.
Idle instances are indexed, so handing out a request costs the same with 500 instances
as with 15 (a fleet of hundreds at hundreds of requests per second: docs/scaling-plan.md).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.fleet import Instance
from autoscaler.plan import Actions
from autoscaler.simulate.model import SimConfig
from config.aws import QueueDepth


class SimPolicy(Protocol):
    """A scaling policy as the simulator drives it."""

    name: str
    tick_s: float

    def step(self, now: float, load: QueueDepth, instances: list[Instance]) -> Actions:
        """Actions for this tick."""
        ...


@dataclass
class Workload:
    """Open-loop arrival times, or a closed loop of ``clients`` each sending its next
    request as soon as its previous one completes, ``requests`` in all."""

    name: str
    arrivals: Sequence[float] = ()
    clients: int = 0
    requests: int = 0
    horizon: float = 0.0  # simulate at least this long (to see scale-in costs)
    restart_at: float | None = None  # closed loop: run the clients again at this time


@dataclass
class _Inst:
    id: str
    slot: int
    state: str  # booting | idle | busy | stopped | terminated
    since: float
    origin: str
    ready_at: float = 0.0
    epoch: int = 0
    request: int | None = None
    draining: str | None = None  # "stop" or "terminate" after the task in hand
    billed: float = 0.0


@dataclass
class SimResult:
    """What one run produced."""

    policy: str
    trace: str
    latencies: list[float]
    instance_seconds: float
    completed: int
    submitted: int
    max_active: int
    end: float
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # t, active, queue

    def summary(self) -> dict[str, float | int | str]:
        """Cost and latency figures (seconds)."""
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, math.ceil(p * len(lat)) - 1)] if lat else math.nan

        return {"policy": self.policy, "trace": self.trace, "requests": self.submitted,
                "completed": self.completed, "instance_seconds": round(self.instance_seconds, 1),
                "latency_mean": round(sum(lat) / len(lat), 3) if lat else math.nan,
                "latency_p95": round(pct(0.95), 3), "latency_p99": round(pct(0.99), 3),
                "max_instances": self.max_active, "makespan": round(self.end, 1)}


class Simulation:
    """One policy on one workload."""

    def __init__(self, config: SimConfig, policy: SimPolicy, workload: Workload) -> None:
        self.c = config
        self.policy = policy
        self.w = workload
        self.rng = random.Random(config.seed)
        self.now = 0.0
        self.events: list[tuple[float, int, str, tuple[object, ...]]] = []
        self.seq = itertools.count()
        self.queue: deque[int] = deque()
        self.arrived: dict[int, float] = {}
        self.latencies: list[float] = []
        self.insts: dict[str, _Inst] = {}
        # Instances whose state is "idle" (never draining: only busy ones drain).
        self.idle: dict[str, _Inst] = {}
        self.ids = itertools.count(1)
        self.next_request = 0
        self.timeline: list[tuple[float, int, int]] = []
        self.max_active = 0
        self.last_done = 0.0

    # -- events ------------------------------------------------------------------------
    def _at(self, t: float, kind: str, *args: object) -> None:
        heapq.heappush(self.events, (t, next(self.seq), kind, args))

    def _service(self) -> float:
        if self.c.service_cv <= 0:
            return self.c.service_s
        sigma = math.sqrt(math.log(1 + self.c.service_cv ** 2))
        return self.c.service_s * math.exp(self.rng.gauss(-sigma * sigma / 2, sigma))

    def _submit(self) -> None:
        rid = self.next_request
        self.next_request += 1
        self.arrived[rid] = self.now
        self.queue.append(rid)
        self._dispatch()

    def _set_state(self, inst: _Inst, state: str) -> None:
        """Change ``inst``'s state, keeping the idle index in step."""
        inst.state = state
        if state == "idle":
            self.idle[inst.id] = inst
        else:
            self.idle.pop(inst.id, None)

    def _dispatch(self) -> None:
        """Hand queued requests to idle instances, lowest slot first."""
        if not self.queue or not self.idle:
            return
        for inst in sorted(self.idle.values(), key=lambda i: i.slot):
            if not self.queue:
                return
            rid = self.queue.popleft()
            self._set_state(inst, "busy")
            inst.request = rid
            self._at(self.now + self._service(), "done", inst.id, rid)

    # -- fleet ---------------------------------------------------------------------------
    def _bill(self, inst: _Inst) -> None:
        inst.billed += max(self.now - inst.since, self.c.billing_min_s)

    def _active(self) -> int:
        return sum(i.state in {"booting", "idle", "busy"} for i in self.insts.values())

    def _view(self) -> list[Instance]:
        states = {"booting": "pending", "idle": "running", "busy": "running",
                  "stopped": "stopped"}
        out = []
        for i in self.insts.values():
            if i.state == "terminated":
                continue
            state = "stopping" if i.draining else states[i.state]
            out.append(Instance(i.id, f"app-tier-instance-{i.slot}", i.slot, state, i.since,
                                i.origin))
        return out

    def _come_up(self, inst: _Inst, delay: float, origin: str) -> None:
        self._set_state(inst, "booting")
        inst.since, inst.origin = self.now, origin
        inst.epoch += 1
        inst.ready_at = self.now + delay
        self._at(inst.ready_at, "ready", inst.id, inst.epoch)

    def _go_down(self, inst: _Inst, how: str) -> None:
        if inst.state == "busy":
            inst.draining = how  # warm shutdown: the task in hand finishes first
            return
        if inst.state in {"booting", "idle"}:
            self._bill(inst)
        self._set_state(inst, "stopped" if how == "stop" else "terminated")
        inst.draining, inst.request = None, None
        inst.epoch += 1

    def _apply(self, actions: Actions) -> None:
        for iid in actions.terminate:
            if iid in self.insts and self.insts[iid].state != "terminated":
                self._go_down(self.insts[iid], "terminate")
        for iid in actions.start:
            inst = self.insts.get(iid)
            if inst is not None and inst.state == "stopped":
                self._come_up(inst, self.c.warm_start_s, "start")
        if actions.launch:
            taken = {i.slot for i in self.insts.values() if i.state != "terminated"}
            free = [s for s in range(1, self.c.max_instances + 1) if s not in taken]
            for slot in free[:actions.launch]:
                inst = _Inst(f"i-{next(self.ids)}", slot, "booting", self.now, "launch")
                self.insts[inst.id] = inst
                self._come_up(inst, self.c.cold_boot_s, "launch")
        for iid in actions.stop:
            inst = self.insts.get(iid)
            if inst is not None and inst.state in {"booting", "idle", "busy"}:
                self._go_down(inst, "stop")
        live = sum(i.state != "terminated" for i in self.insts.values())
        if live > self.c.max_instances:
            raise AssertionError(f"{live} instances above max {self.c.max_instances}")

    # -- run -------------------------------------------------------------------------------
    def run(self) -> SimResult:
        """Simulate until every request completed and the horizon passed."""
        w = self.w
        rounds = 2 if w.clients and w.restart_at is not None else 1
        total = len(w.arrivals) if not w.clients else w.requests * rounds
        for t in w.arrivals:
            self._at(t, "arrive")
        for start in ([0.0, w.restart_at] if rounds == 2 else [0.0]):
            for _ in range(min(w.clients, w.requests)):
                self._at(float(start or 0.0), "arrive")
        self.round_limit = w.requests
        self._at(0.0, "tick")
        done = 0
        limit = max(w.horizon, (max(w.arrivals) if w.arrivals else 0.0)) + 86400.0
        while self.events:
            self.now, _, kind, args = heapq.heappop(self.events)
            if self.now > limit:
                raise AssertionError(f"{self.policy.name} never finished {w.name}")
            if kind == "arrive":
                if w.clients and self.next_request >= self.round_limit:
                    self.round_limit += w.requests  # the second round of clients
                self._submit()
            elif kind == "ready":
                inst = self.insts[str(args[0])]
                if inst.epoch == args[1] and inst.state == "booting":
                    self._set_state(inst, "idle")
                    self._dispatch()
            elif kind == "done":
                inst = self.insts[str(args[0])]
                rid = int(args[1])  # type: ignore[call-overload]
                self.latencies.append(self.now - self.arrived.pop(rid))
                done += 1
                self.last_done = self.now
                self._set_state(inst, "idle")
                inst.request = None
                if inst.draining:
                    how, inst.draining = inst.draining, None
                    self._go_down(inst, how)
                if w.clients and self.next_request < self.round_limit:
                    self._submit()  # the client sends its next request
                self._dispatch()
            elif kind == "tick":
                busy = sum(i.state == "busy" for i in self.insts.values())
                load = QueueDepth(len(self.queue), busy, 0)
                self._apply(self.policy.step(self.now, load, self._view()))
                self._dispatch()
                active = self._active()
                self.max_active = max(self.max_active, active)
                self.timeline.append((self.now, active, len(self.queue)))
                finished = done >= total and self.now >= max(w.horizon, w.restart_at or 0.0)
                # a policy that never reaches zero is cut off an hour after the work ends
                if not (finished and (active == 0 or self.now > self.last_done + 3600)):
                    self._at(self.now + self.policy.tick_s, "tick")
        for inst in self.insts.values():
            if inst.state in {"booting", "idle", "busy"}:
                self._bill(inst)
        return SimResult(self.policy.name, w.name, self.latencies,
                         sum(i.billed for i in self.insts.values()), done, total,
                         self.max_active, self.now, self.timeline)


def simulate(config: SimConfig, make_policy: Callable[[], SimPolicy],
             workload: Workload) -> SimResult:
    """Run one fresh policy on ``workload``."""
    return Simulation(config, make_policy(), workload).run()
