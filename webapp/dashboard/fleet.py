"""The fleet half of the dashboard: queue depth plus the autoscaler's published state
(as ``webapp.fleet.read_state`` returns it) folded into what the page shows (pure).

- instances counted by EC2 state, in lifecycle order;
- ``actual`` = running + pending instances (pending ones are capacity on the way, as
  the controller counts them), next to the controller's ``desired`` and ``max``;
- the decision log, newest first, with runs of identical ticks collapsed into one row
  (an idle controller logs the same "hold" every tick; the page shows the changes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: EC2 instance states in lifecycle order; others (if any) follow alphabetically.
STATE_ORDER = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
#: States that count as capacity (running or on the way).
CAPACITY_STATES = frozenset({"pending", "running"})
#: Decision fields that make two ticks "the same decision".
DECISION_KEY = ("load", "current", "booting", "desired", "action", "reason")


def by_state(instances: Sequence[Any]) -> dict[str, int]:
    """Instance count per state, lifecycle order; malformed entries count as ``unknown``."""
    counts: dict[str, int] = {}
    for instance in instances:
        state = instance.get("state") if isinstance(instance, Mapping) else None
        name = state if isinstance(state, str) and state else "unknown"
        counts[name] = counts.get(name, 0) + 1
    known = [s for s in STATE_ORDER if s in counts]
    others = sorted(s for s in counts if s not in STATE_ORDER)
    return {s: counts[s] for s in (*known, *others)}


def recent_decisions(decisions: Sequence[Any], limit: int = 12) -> list[dict[str, Any]]:
    """The last ``limit`` distinct decisions, newest first, each with ``repeat`` (how
    many consecutive ticks made it) and ``first_time`` (when the run began)."""
    runs: list[dict[str, Any]] = []
    for entry in decisions:
        if not isinstance(entry, Mapping):
            continue
        key = tuple(entry.get(k) for k in DECISION_KEY)
        if runs and runs[-1]["_key"] == key:
            runs[-1].update(time=entry.get("time"), repeat=runs[-1]["repeat"] + 1)
            continue
        runs.append({**entry, "first_time": entry.get("time"), "repeat": 1, "_key": key})
    newest = runs[-limit:][::-1]
    return [{k: v for k, v in run.items() if k != "_key"} for run in newest]


def summarize_fleet(queue: Mapping[str, Any], state: Mapping[str, Any],
                    decision_limit: int = 12) -> dict[str, Any]:
    """The dashboard's fleet section from the queue reading and the parsed state."""
    instances = state.get("instances") or []
    counts = by_state(instances)
    published = bool((state.get("autoscaler") or {}).get("published"))
    return {
        "queue": dict(queue),
        "autoscaler": dict(state.get("autoscaler") or {}),
        "desired": state.get("desired"),
        "max": state.get("max"),
        "actual": sum(n for s, n in counts.items() if s in CAPACITY_STATES)
        if published else None,
        "by_state": counts,
        "instances": [i for i in instances if isinstance(i, Mapping)],
        "decisions": recent_decisions(state.get("decisions") or [], decision_limit),
    }
