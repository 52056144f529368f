"""Standard workloads (seeded, reproducible)."""

from __future__ import annotations

import math
import random

from autoscaler.simulate.engine import Workload


def burst(requests: int = 1000, clients: int = 100) -> Workload:
    """The CSE546 workload: ``clients`` closed-loop clients, ``requests`` in all, from
    an idle fleet at t=0."""
    return Workload(f"burst-{requests}x{clients}", clients=clients, requests=requests)


def burst_twice(requests: int = 1000, clients: int = 100, gap: float = 900.0) -> Workload:
    """Two CSE546 bursts ``gap`` seconds apart (the second finds what the first left:
    a warm pool for ours, nothing for the baselines)."""
    return Workload(f"burst-twice-{requests}x{clients}", clients=clients, requests=requests,
                    restart_at=gap)


def step(rate: float = 10.0, start: float = 60.0, length: float = 600.0,
         tail: float = 600.0, seed: int = 1) -> Workload:
    """Idle, then Poisson arrivals at ``rate``/s for ``length`` s, then idle."""
    rng = random.Random(seed)
    t, arrivals = start, []
    while True:
        t += rng.expovariate(rate)
        if t >= start + length:
            break
        arrivals.append(t)
    return Workload("step", arrivals, horizon=start + length + tail)


def diurnal(peak: float = 20.0, period: float = 3600.0, periods: int = 2,
            seed: int = 1) -> Workload:
    """Poisson arrivals with rate peak·(1 − cos 2πt/period)/2 (a compressed day),
    by thinning."""
    rng = random.Random(seed)
    t, arrivals, end = 0.0, [], period * periods
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            break
        if rng.random() < (1 - math.cos(2 * math.pi * t / period)) / 2:
            arrivals.append(t)
    return Workload("diurnal", arrivals, horizon=end)


def spiky(base: float = 1.0, length: float = 3600.0, spikes: int = 6,
          spike_size: int = 200, spike_s: float = 10.0, seed: int = 1) -> Workload:
    """Poisson at ``base``/s plus ``spikes`` bursts of ``spike_size`` requests arriving
    within ``spike_s`` seconds, at random times."""
    rng = random.Random(seed)
    t, arrivals = 0.0, []
    while True:
        t += rng.expovariate(base)
        if t >= length:
            break
        arrivals.append(t)
    for _ in range(spikes):
        at = rng.uniform(0, length - spike_s)
        arrivals += [at + rng.uniform(0, spike_s) for _ in range(spike_size)]
    return Workload("poisson-spikes", sorted(arrivals), horizon=length)


def all_traces() -> dict[str, Workload]:
    """Every standard trace, by name."""
    traces = [burst(), burst_twice(), step(), diurnal(), spiky()]
    return {t.name: t for t in traces}
