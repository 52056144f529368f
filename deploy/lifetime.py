"""Child processes that die with their parent, and telling a process from a PID reuse.

One place for the mechanism every long-running child of ours uses (the embedded stack's
services, moto's server, the runner's workers): Linux's parent-death signal,
``PR_SET_PDEATHSIG``, set in the child between ``fork`` and ``exec``. The kernel then
sends the signal when the parent dies, however it dies (SIGKILL and the OOM killer
included), so a dead parent leaves no orphan behind.

Two catches, both handled here:

* the signal fires when the parent *thread* that forked the child exits, not the
  process, so :func:`child_setup` sets it only for children started from the main
  thread (whose end is the process's end);
* the parent may die before ``prctl`` runs; the child then exits at once.

A PID alone does not name a process for long: a PID recorded in a state file may
belong to another process by the time it is read. :func:`start_time` (from
``/proc/<pid>/stat``) tells them apart.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits (no-op elsewhere).

    When ``parent`` is given and has already gone, exit at once (the race before prctl).
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def pin_to(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (and what it forks) to ``cpus``; None: no pin."""
    if cpus is None:
        return None
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


def child_setup(cpus: frozenset[int] | None = None, nice: int = 0) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when this process dies, is pinned to
    ``cpus`` (None: not pinned) and runs ``nice`` steps below this process's priority
    (what it forks inherits both). Call it right before starting the child.

    From any thread but the main one the death signal is left out: it would fire when
    that thread ends, killing a child meant to outlive it. Such a child must be stopped
    by its PID (as every child of ours is on a clean exit anyway).
    """
    pin = pin_to(cpus)
    parent = os.getpid() if threading.current_thread() is threading.main_thread() else None

    def setup() -> None:
        if pin is not None:
            pin()
        if nice:
            os.nice(nice)
        if parent is not None:
            die_with_parent(parent=parent)

    return setup


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/<pid>/stat`` (the state first), None: no such process.
    They follow the command name, which may hold spaces and ")"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, field 22), or None when there
    is no such process. Two processes that share a PID one after the other never share it."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def is_running(pid: int, started: int | None = None) -> bool:
    """True while process ``pid`` exists, is not a zombie and, when ``started`` is
    given, is still the process that started then (not a later one with its PID)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started
