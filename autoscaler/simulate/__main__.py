"""``python -m autoscaler.simulate``: every policy on every trace → a table (stdout),
``results/simulate/simulate.json``, ``instances.png`` and ``latency_cdf.png``.

``--scale`` multiplies every trace's load and ``--max`` the fleet, to see the policies
at many times the reference load (docs/scaling-plan.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from autoscaler.simulate.engine import SimResult, simulate
from autoscaler.simulate.model import SimConfig
from autoscaler.simulate.policies import all_policies, aws_settings
from autoscaler.simulate.traces import TRACE_NAMES
from autoscaler.simulate.traces import trace as standard_trace

#: Points drawn per latency CDF: a trace at 100x holds hundreds of thousands of requests.
CDF_POINTS = 2000


def table(rows: Sequence[Mapping[str, object]]) -> str:
    """A markdown table of the summaries."""
    cols = ["trace", "policy", "instance_seconds", "latency_mean", "latency_p95",
            "latency_p99", "max_instances", "completed"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def dominance(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Per trace, the baselines ours does not beat on both cost and mean/p99 latency."""
    notes = []
    for trace in sorted({str(r["trace"]) for r in rows}):
        mine = next(r for r in rows if r["trace"] == trace and r["policy"] == "ours")
        for r in rows:
            if r["trace"] != trace or r["policy"] in {"ours", "ours-cold"}:
                continue
            worse = [k for k in ("instance_seconds", "latency_mean", "latency_p99")
                     if float(mine[k]) > float(r[k]) * 1.001]  # type: ignore[arg-type]
            if worse:
                notes.append(f"{trace}: ours worse than {r['policy']} on {', '.join(worse)}")
    return notes


def cdf_points(latencies: Sequence[float], points: int = CDF_POINTS
               ) -> tuple[list[float], list[float]]:
    """The empirical CDF of ``latencies`` at no more than ``points`` evenly spaced
    ranks (the last rank always included)."""
    lat = sorted(latencies)
    if not lat:
        return [], []
    step = max(1, -(-len(lat) // points))
    ranks = list(range(step - 1, len(lat), step))
    if ranks[-1] != len(lat) - 1:
        ranks.append(len(lat) - 1)
    return [lat[i] for i in ranks], [(i + 1) / len(lat) for i in ranks]


def plots(results: list[SimResult], out: Path) -> None:
    """Instances over time and latency CDFs, one panel per trace."""
    # Deferred: the backend must be chosen before pyplot is imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = sorted({r.trace for r in results})
    for kind in ("instances", "latency_cdf"):
        fig, axes = plt.subplots(len(traces), 1, figsize=(10, 3.2 * len(traces)), squeeze=False)
        axes = axes[:, 0]
        for ax, trace in zip(axes, traces, strict=True):
            for r in (r for r in results if r.trace == trace):
                if kind == "instances":
                    ax.step([t for t, _, _ in r.timeline], [a for _, a, _ in r.timeline],
                            where="post", label=r.policy, linewidth=1)
                    ax.set_ylabel("instances")
                else:
                    xs, ys = cdf_points(r.latencies)
                    ax.plot(xs, ys, label=r.policy, linewidth=1)
                    ax.set_xscale("log")
                    ax.set_ylabel("fraction ≤ x")
            ax.set_title(trace)
            ax.legend(fontsize=7)
        axes[-1].set_xlabel("time (s)" if kind == "instances" else "latency (s)")
        fig.tight_layout()
        fig.savefig(out / f"{kind}.png", dpi=90)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the grid and write the outputs."""
    d = SimConfig()
    p = argparse.ArgumentParser(prog="python -m autoscaler.simulate", description=__doc__)
    p.add_argument("--max", type=int, default=d.max_instances, help="instances (15)")
    p.add_argument("--cold-boot", type=float, default=d.cold_boot_s, help="seconds (40)")
    p.add_argument("--warm-start", type=float, default=d.warm_start_s, help="seconds (15)")
    p.add_argument("--service-time", type=float, default=d.service_s,
                   help="seconds per request (default 0.13: bench.recognizer's mean)")
    p.add_argument("--service-from", type=Path,
                   help="take the service time from a bench.recognizer JSON (its mean "
                        "batch-1 latency); overrides --service-time")
    p.add_argument("--backlog-per-instance", type=float, default=None,
                   help="the backlog target of ours, keda and target-tracking (default: the "
                        "aws profile's FACEFLEET_BACKLOG_PER_INSTANCE, 3)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every trace's load (requests and clients of the bursts, "
                        "arrival rates, spike sizes) by this; 1 = the standard traces")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=Path("results/simulate"))
    p.add_argument("--traces", nargs="*", help="subset of traces")
    p.add_argument("--policies", nargs="*", help="subset of policies")
    args = p.parse_args(argv)
    if args.service_from is not None:
        try:
            latency = json.loads(args.service_from.read_text())["latency_b1"]
            args.service_time = float(latency["mean_s"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"simulate: cannot read a service time from {args.service_from}: {exc}",
                  file=sys.stderr)
            return 2
    if args.max < 1 or min(args.cold_boot, args.warm_start) < 0 or args.service_time <= 0 \
            or args.scale <= 0 or (args.backlog_per_instance is not None
                                   and args.backlog_per_instance <= 0):
        print("simulate: --max ≥ 1, boot delays ≥ 0, and --service-time, --scale and "
              "--backlog-per-instance > 0", file=sys.stderr)
        return 2
    config = replace(d, max_instances=args.max, cold_boot_s=args.cold_boot,
                     warm_start_s=args.warm_start, service_s=args.service_time,
                     seed=args.seed)
    settings = aws_settings(args.max)
    if args.backlog_per_instance is not None:
        settings = replace(settings, backlog_per_instance=args.backlog_per_instance)
    policies = all_policies(args.max, settings)
    for name, chosen, known in (("trace", args.traces, TRACE_NAMES),
                                ("policy", args.policies, policies)):
        unknown = set(chosen or ()) - set(known)
        if unknown:
            print(f"simulate: unknown {name} {sorted(unknown)}; choose from {sorted(known)}",
                  file=sys.stderr)
            return 2
    # Built only when chosen: at a large --scale one trace holds millions of arrivals.
    traces = {t: standard_trace(t, args.scale) for t in (args.traces or TRACE_NAMES)}
    grid = [(t, pn) for t in traces for pn in (args.policies or policies)]
    results = [simulate(config, policies[pn], traces[t])
               for t, pn in tqdm(grid, desc="simulating", unit="run")]
    rows = [r.summary() for r in results]
    args.out.mkdir(parents=True, exist_ok=True)
    notes = dominance(rows) if "ours" in (args.policies or policies) else []
    (args.out / "simulate.json").write_text(json.dumps(
        {"config": asdict(config), "scale": args.scale, "ours_settings": {
            k: v for k, v in asdict(settings).items()
            if isinstance(v, int | float | bool)}, "results": rows, "not_dominated": notes},
        indent=2))
    plots(results, args.out)
    print(table(rows))
    for note in notes:
        print("note:", note)
    wins = sum(1 for t in {r["trace"] for r in rows} if not any(
        n.startswith(f"{t}:") for n in notes))
    print(f"simulate: {len(rows)} runs, ours dominates on {wins}/{len({r['trace'] for r in rows})}"
          f" traces; outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
