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


#: The standard traces' names (the bursts' names are those of their scale-1 form).
TRACE_NAMES = ("burst-1000x100", "burst-twice-1000x100", "step", "diurnal", "poisson-spikes")


def trace(name: str, scale: float = 1.0) -> Workload:
    """The standard trace ``name`` with its load multiplied by ``scale``.

    ``scale`` multiplies what sets each trace's load: the bursts' requests and clients,
    the step's rate, the diurnal peak, the spiky base rate and spike size; timing (the
    step's length, the day, the spikes' spread) is unchanged. At a scale other than 1
    the workload's name says so (``step@100x``). KeyError for an unknown name.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale:g}")

    def n(count: int) -> int:
        return max(1, round(count * scale))

    makers = {
        "burst-1000x100": lambda: burst(n(1000), n(100)),
        "burst-twice-1000x100": lambda: burst_twice(n(1000), n(100)),
        "step": lambda: step(rate=10.0 * scale),
        "diurnal": lambda: diurnal(peak=20.0 * scale),
        "poisson-spikes": lambda: spiky(base=1.0 * scale, spike_size=n(200)),
    }
    workload = makers[name]()
    if scale != 1:
        workload.name = f"{name}@{scale:g}x"
    return workload


def all_traces(scale: float = 1.0) -> dict[str, Workload]:
    """Every standard trace at ``scale``, by its base name."""
    return {name: trace(name, scale) for name in TRACE_NAMES}
