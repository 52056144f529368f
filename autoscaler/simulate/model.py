"""Assumptions of the simulator, in one place, with where each number comes from.

Boot delays (defaults, seconds; override on the command line):
- ``cold_boot_s`` = 40: RunInstances to a worker taking tasks. C. Percival's
  ec2-boot-bench (daemonology.net, 2021-08-12) measured Linux AMIs on c5.xlarge at
  ~1.5 s for the RunInstances call, ~5 s pending→running and ~17 + ~6 s from running
  to SSH open: ~29 s to a booted OS (M. Sweet, "EC2 Launch Times", 2023, reports the
  same order, Amazon Linux 2023 fastest). Our worker then imports torch and loads the
  model: ~10 s (the runner's measured preload: docs/benchmarks.md).
- ``warm_start_s`` = 15: StartInstances of a stopped warm-pool instance. Same ~5 s
  pending→running; the root volume is already hydrated (the slow part of a first boot,
  see the EBS discussion of "Making EC2 boot time faster", 2024) so the OS is up in
  ~5 s; the worker start from a warm page-cache-less disk ~5 s.
- ``service_s`` = 0.13: the mean per-image latency of a preloaded recognizer on one
  torch thread, as ``python -m bench.recognizer`` measures it on 5-celebrity photos
  (docs/benchmarks.md; a CSE546 64×64 image is faster). Pass
  ``--service-from results/recognizer.json`` to take it from a fresh run, with a
  lognormal spread (coefficient of variation ``service_cv`` = 0.2).
Billing: EC2 Linux on-demand bills per second with a 60 s minimum each time an
instance is launched or started (``billing_min_s``); we bill from the API call to the
stop/terminate (pessimistic by the few seconds of ``pending`` AWS does not bill).
A stopped instance costs only its EBS volume (not counted in instance-seconds).
Scale-in of a busy instance is a warm shutdown: it finishes its task first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimConfig:
    """Fleet and workload constants of one simulation (seconds)."""

    max_instances: int = 15
    cold_boot_s: float = 40.0
    warm_start_s: float = 15.0
    service_s: float = 0.13
    service_cv: float = 0.2
    billing_min_s: float = 60.0
    seed: int = 1
