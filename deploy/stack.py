"""The embedded stack: moto's server, provisioning, the web tier and the worker fleet.

The fleet is the autoscaler by default: its controller (``python -m autoscaler``)
scales EC2 instances of the embedded endpoint from the queue's depth, and its runner
(``python -m autoscaler.runner``) makes each running instance a local Celery worker.
``FACEFLEET_AUTOSCALE=false`` starts ``FACEFLEET_WORKERS`` fixed workers instead.

    python -m deploy.stack run      # foreground; Ctrl-C stops everything
    python -m deploy.stack up       # detached: ``run --detached`` in its own session
    python -m deploy.stack status   # JSON: endpoint, names, processes alive
    python -m deploy.stack down     # stop the stack, foreground or detached

Addresses: ``FACEFLEET_AWS_ENDPOINT`` (moto, default http://127.0.0.1:5055) and
``FACEFLEET_WEB_BIND`` (default 127.0.0.1:8000); see :mod:`config.stack` for the rest.
moto keeps its state in memory: stopping the stack forgets every bucket and queue.

No orphans: one *stack process* (``run``, in the foreground or detached by ``up``)
owns every service. It records itself and them in ``.stack/state.json`` (PIDs with
their start times, so a reused PID is never taken for one of ours) and removes the file
when it stops. SIGINT, SIGTERM and SIGHUP stop it alike; no failed write to a closed
stdout (``make run | tee`` ended by Ctrl-C) interrupts that. Every service is started
in its own session (so Ctrl-C reaches the stack only, which stops them in order, by
PID) with Linux's parent-death signal (:mod:`deploy.lifetime`), so even a SIGKILLed
stack takes them with it. ``down`` asks the stack process to stop; when it is gone
already (a stale state file), ``down`` stops what it had recorded that still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from autoscaler.errors import AutoscalerError
from autoscaler.state import read_state
from config.autoscaler import AutoscalerSettings
from config.aws import s3_client
from config.env import ConfigError
from config.errors import FacefleetError
from config.serving import ServingSettings
from config.settings import Settings
from config.stack import StackSettings
from config.web import WebSettings
from deploy.embedded_aws import EmbeddedAwsError, free_port, is_listening, start_moto
from deploy.lifetime import child_setup, is_running, start_time
from deploy.provision import provision

ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "state.json"
#: The detached stack's own output (``up``), under the logs folder.
STACK_LOG = "stack.log"
#: Signals that stop the stack, all alike: Ctrl-C (SIGINT, sent to the whole foreground
#: process group, ``| tee`` included), ``kill`` and ``down`` (SIGTERM), a closed
#: terminal (SIGHUP).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How long ``down`` lets a live stack stop its processes (it SIGKILLs the ones left
#: after 30 s) before it SIGKILLs the stack itself.
DOWN_WAIT_S = 60.0


class StackError(FacefleetError):
    """The stack could not start or stop; the message says what to do."""

    default_code = "stack"


@dataclass
class Proc:
    """One process of the stack."""

    name: str
    pid: int
    log: str
    #: Where this process's own output starts in ``log`` (logs are appended across runs).
    log_start: int = 0
    #: Its start time (:func:`deploy.lifetime.start_time`): after it exits, its PID may
    #: be another process's. None (a state file of an older version): not checked.
    started: int | None = None

    def alive(self) -> bool:
        """True while the process exists, is not a zombie and is still the one recorded."""
        return is_running(self.pid, self.started)


# Children started by this process, kept until reaped: a Popen dropped while its child
# runs warns (ResourceWarning) when the stack is driven in-process (bench.scaling, tests).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# How to start each service again (by name), for the supervisor; moto's server is not
# here: its state is in memory, so when it dies the stack stops.
_RECIPES: dict[str, Callable[[], Proc]] = {}
#: A service restarted this many times within RESTART_WINDOW_S is crash-looping: the
#: stack then stops instead (as systemd's StartLimitBurst/StartLimitIntervalSec).
RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0


def _spawn(name: str, cmd: list[str], env: dict[str, str], logs: Path,
           cpus: frozenset[int] | None = None, nice: int = 0) -> Proc:
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        start = log.tell()
        # Its own session: Ctrl-C reaches the stack only, which stops the parts in order.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=child_setup(cpus, nice))
    _CHILDREN[proc.pid] = proc
    _RECIPES[name] = partial(_spawn, name, cmd, env, logs, cpus, nice)
    return Proc(name, proc.pid, str(log_path), start, start_time(proc.pid))


def _stop(procs: list[Proc], timeout: float = 30.0) -> None:
    """SIGTERM each process (by PID), wait, then SIGKILL the ones still there."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        while proc.alive() and time.monotonic() < deadline:
            _reap(proc.pid)
            time.sleep(0.1)
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        _reap(proc.pid)


def stop_processes(procs: list[Proc], timeout: float = 30.0) -> None:
    """Stop ``procs`` by PID, last started first (SIGTERM, then SIGKILL after ``timeout``)."""
    _stop(list(reversed(procs)), timeout)


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    # Not our child when a detached stack is stopped by another command.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (delivered when this ends) while stopping what
    started: an exception raised by their handler halfway would leave the rest running."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _wait_for(what: str, ready: Callable[[], bool], procs: list[Proc],
              timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in procs if not p.alive()]
        if dead:
            raise StackError(f"{dead[0].name} exited while starting; see {dead[0].log}")
        if ready():
            return
        time.sleep(0.2)
    raise StackError(f"{what} not ready within {timeout:.0f} s (FACEFLEET_STACK_START_TIMEOUT)")


def _log_has(proc: Proc, *needles: str) -> bool:
    """True when this run of ``proc`` has logged every one of ``needles`` (what an
    earlier run left in the same file does not count)."""
    try:
        with open(proc.log, "rb") as log:
            log.seek(proc.log_start)
            text = log.read().decode(errors="replace")
    except OSError:
        return False
    return all(n in text for n in needles)


def embedded_port(settings: Settings) -> tuple[str, int]:
    """Host and port of the embedded endpoint; StackError when AWS is configured."""
    if settings.aws_endpoint is None:
        raise StackError("FACEFLEET_AWS_ENDPOINT=aws: the embedded stack needs a loopback "
                         "endpoint such as http://127.0.0.1:5055")
    parts = urlsplit(settings.aws_endpoint)
    return parts.hostname or "127.0.0.1", parts.port or 80


def child_env(settings: Settings, weights_uri: str | None = None) -> dict[str, str]:
    """This environment plus ``settings`` for a child process; with ``weights_uri``
    (the model bucket's copy) for workers, which load the weights from there."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if weights_uri:
        env["FACEFLEET_WEIGHTS"] = weights_uri
    return env


def spawn_autoscaler(env: dict[str, str], logs: Path,
                     worker_cpus: frozenset[int] | None = None,
                     service_cpus: frozenset[int] | None = None,
                     worker_nice: int = 0) -> list[Proc]:
    """Start the embedded runner, then the controller (stopped in reverse: the controller
    first, so no instance changes while the runner warm-shuts its workers).

    ``env`` is the workers' environment (settings, weights URI, FACEFLEET_MAX_INSTANCES
    and the other autoscaler variables); worker logs go to ``logs/workers/<name>.log``.
    The runner's workers are forks of it, so pinning (or nicing) the runner pins them.
    """
    runner = _spawn("runner", [sys.executable, "-m", "autoscaler.runner",
                               "--log-dir", str(logs / "workers")], env, logs, worker_cpus,
                    worker_nice)
    return [runner, spawn_controller(env, logs, service_cpus)]


def spawn_controller(env: dict[str, str], logs: Path,
                     cpus: frozenset[int] | None = None) -> Proc:
    """Start a controller (``python -m autoscaler``); its log is ``logs/controller.log``
    (appended: a restarted controller continues the same file)."""
    return _spawn("controller", [sys.executable, "-m", "autoscaler"], env, logs, cpus)


def autoscaler_ready(procs: list[Proc]) -> bool:
    """True once the runner has its model preloaded and the controller has started."""
    ready = {"runner": ("runner up",), "controller": ("controller up",)}
    return all(_log_has(p, *ready[p.name]) for p in procs if p.name in ready)


def _wait_autoscaler(procs: list[Proc], timeout: float) -> None:
    _wait_for("autoscaler", lambda: autoscaler_ready(procs), procs, timeout)


def start(settings: Settings, serving: ServingSettings, stack: StackSettings,
          web: WebSettings, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start every part; return the state (processes, names, URLs). Stops all on error."""
    logs = stack.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    host, port = embedded_port(settings)
    if stack.autoscale:
        AutoscalerSettings.from_env()  # a bad FACEFLEET_* value fails before anything runs
    procs: list[Proc] = []
    try:
        moto_port = free_port() if stack.fault_proxy else port
        say(f"starting the embedded AWS endpoint on http://{host}:{moto_port}")
        moto = start_moto(moto_port, host, log_path=logs / "moto.log",
                          cpus=stack.service_cpus)
        _CHILDREN[moto.pid] = moto
        procs.append(Proc("moto", moto.pid, str(logs / "moto.log"),
                          started=start_time(moto.pid)))
        if stack.fault_proxy:
            say(f"starting the fault proxy on {settings.aws_endpoint}")
            procs.append(_spawn("faultproxy", [
                sys.executable, "-m", "deploy.faultproxy", "--listen", f"{host}:{port}",
                "--upstream", f"http://{host}:{moto_port}"], child_env(settings), logs,
                stack.service_cpus))
            _wait_for("fault proxy", lambda: is_listening(str(settings.aws_endpoint)),
                      procs, stack.start_timeout)
        say("provisioning buckets, queues, weights and gallery")
        provisioned = provision(settings, serving)
        env = child_env(settings)
        worker_env = child_env(settings, provisioned.weights_uri)
        web_url = None
        if (ROOT / "webapp" / "__init__.py").exists():
            # gunicorn_conf.py reads the bind address from the environment.
            env["FACEFLEET_WEB_BIND"] = web.bind
            procs.append(_spawn("web", [
                sys.executable, "-m", "gunicorn", "-c", str(ROOT / "webapp/gunicorn_conf.py"),
                "webapp:create_app()"], env, logs, stack.service_cpus))
            web_url = f"http://{web.bind}" if not web.bind.startswith("unix:") else web.bind
        else:
            say("webapp/ is not there yet: starting without a web tier")
        if stack.autoscale:
            say("starting the autoscaler (controller and embedded runner)")
            procs += spawn_autoscaler(worker_env, logs, stack.worker_cpus, stack.service_cpus,
                                      stack.worker_nice)
            _wait_autoscaler(procs, stack.start_timeout)
        else:
            for index in range(stack.workers):
                procs.append(_spawn(f"worker-{index + 1}", [
                    sys.executable, "-m", "celery", "-A", "tasks", "worker",
                    "-n", f"worker-{index + 1}@%h", "--loglevel=INFO",
                    "--without-gossip", "--without-mingle"],
                    worker_env, logs, stack.worker_cpus, stack.worker_nice))
            say(f"waiting for {stack.workers} worker(s) to load the model")
            for proc in procs:
                if proc.name.startswith("worker-"):
                    _wait_for(proc.name, partial(_log_has, proc, " ready.",
                                                 "recognizer loaded"),
                              procs, stack.start_timeout)
        if web_url is not None and web_url.startswith("http"):
            _wait_for("web tier", lambda: is_listening(web_url + "/healthz"), procs,
                      stack.start_timeout)
    except BaseException:
        with _stop_signals_held():
            _stop(list(reversed(procs)))
        raise
    return {
        "endpoint": settings.aws_endpoint,
        "web": web_url,
        "buckets": {"input": settings.input_bucket, "output": settings.output_bucket,
                    "model": settings.model_bucket},
        "queues": {"requests": settings.queue, "dead_letter": settings.dead_letter_queue,
                   "requests_url": provisioned.queue_url},
        "weights": provisioned.weights_uri,
        "gallery": settings.gallery,
        "processes": [asdict(p) for p in procs],
        "autoscale": stack.autoscale,
        "pool": {"workers": 0 if stack.autoscale else stack.workers,
                 "pool": serving.worker_pool, "concurrency": serving.worker_concurrency,
                 "batch_max": serving.batch_max, "batch_wait_s": serving.batch_wait},
        "cpus": {"workers": sorted(stack.worker_cpus) if stack.worker_cpus else None,
                 "services": sorted(stack.service_cpus) if stack.service_cpus else None,
                 "worker_nice": stack.worker_nice},
        "started_at": time.time(),
    }


def _procs(state: dict[str, Any]) -> list[Proc]:
    return [Proc(**p) for p in state.get("processes", [])]


def _stack_proc(state: dict[str, Any]) -> Proc | None:
    """The stack process itself (None in a state file of an older version)."""
    return Proc(**state["stack"]) if state.get("stack") else None


def _state_path(stack: StackSettings) -> Path:
    return stack.state_dir / STATE_FILE


def _read_state(stack: StackSettings) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_path(stack).read_text())
        return state
    except FileNotFoundError:
        return None


def _write_state(stack: StackSettings, state: dict[str, Any]) -> None:
    """Replace the state file at once: ``status`` and ``down`` may read it meanwhile,
    and a signal may land mid-write."""
    path = _state_path(stack)
    partial_path = path.with_name(f".{path.name}.{os.getpid()}")
    partial_path.write_text(json.dumps(state, indent=2))
    os.replace(partial_path, path)


def _remove_own_state(stack: StackSettings, me: Proc) -> None:
    """Remove the state file if it still describes this stack process."""
    state = _read_state(stack)
    if state is not None and state.get("stack") == asdict(me):
        _state_path(stack).unlink(missing_ok=True)


def _refuse_if_up(stack: StackSettings) -> None:
    """StackError when the recorded stack, or any process it recorded, still runs."""
    old = _read_state(stack)
    if old is None:
        return
    recorded = _procs(old) + [p for p in [_stack_proc(old)] if p is not None]
    if any(p.alive() for p in recorded):
        raise StackError(f"a stack is already up (see {_state_path(stack)}); "
                         "`make down` first")


def echo(message: str, err: bool = False) -> None:
    """Print ``message`` (to stderr with ``err``), never failing.

    When the reader of our output is gone (``make run | tee`` and Ctrl-C: tee dies
    first; or a closed terminal) the write fails with EPIPE or EIO. That must not stop
    the shutdown half way, so the stream is pointed at /dev/null instead: this and
    later writes, and the interpreter's last flush at exit, then succeed.
    """
    stream = sys.stderr if err else sys.stdout
    try:
        print(message, file=stream, flush=True)
    except OSError:
        _to_devnull(stream)


def _to_devnull(stream: TextIO) -> None:
    with contextlib.suppress(OSError, ValueError):  # not a real file: nothing to redirect
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


class _Interrupted(BaseException):
    """A stop signal while the stack starts. A BaseException, as KeyboardInterrupt is,
    so that no ``except Exception`` on the way swallows it; ``start`` stops what it
    started and re-raises."""


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP, alike. The first one stops the stack: while it starts
    by raising :class:`_Interrupted`, once up by setting ``received`` for the wait loop.
    Later ones are ignored, so a second Ctrl-C cannot cut the shutdown short (it is
    bounded: :func:`_stop` SIGKILLs what is left after 30 s)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.starting = True

    def install(self) -> None:
        """Handle the stop signals in this (the main) thread."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        # Python ignores SIGPIPE already (a closed pipe is an OSError, which echo()
        # absorbs); said here because being killed by it would skip the shutdown.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        if self.starting:
            raise _Interrupted(signal.Signals(signum).name)


def _supervise(procs: list[Proc], signals: StopSignals,
               changed: Callable[[list[Proc]], None] = lambda _: None) -> int:
    """Wait for a stop signal (0). A service that exits is started again, as systemd's
    ``Restart=always`` does for the units on an instance (a killed runner, controller
    or web tier is a fault the system must ride out, not a reason to stop it); moto's
    server, or a service that crash-loops, stops the stack (1). ``changed`` is told the
    new process list after each restart."""
    restarts: dict[str, list[float]] = {}
    while signals.received is None:
        for index, proc in enumerate(procs):
            if proc.alive() or signals.received is not None:
                continue
            _reap(proc.pid)
            recipe = _RECIPES.get(proc.name)
            now = time.monotonic()
            recent = [t for t in restarts.get(proc.name, []) if now - t < RESTART_WINDOW_S]
            if recipe is None or len(recent) >= RESTART_LIMIT:
                why = "cannot be restarted" if recipe is None else \
                    f"was restarted {len(recent)} times within {RESTART_WINDOW_S:.0f} s"
                echo(f"{proc.name} (pid {proc.pid}) exited and {why}; stopping facefleet. "
                     f"See {proc.log}", err=True)
                return 1
            procs[index] = recipe()
            restarts[proc.name] = [*recent, now]
            echo(f"{proc.name} (pid {proc.pid}) exited; restarted it as pid "
                 f"{procs[index].pid} (see {proc.log})", err=True)
            changed(procs)
        time.sleep(0.5)
    return 0


def cmd_run(settings: Settings, serving: ServingSettings, stack: StackSettings,
            web: WebSettings, detached: bool = False) -> int:
    """The stack process: start every part and record the state file, restart a part
    that dies (:func:`_supervise`) until a stop signal, then stop everything and remove
    the state file.

    ``detached`` (``up`` runs it so): output goes to a log, ``down`` stops it.
    """
    _refuse_if_up(stack)
    signals = StopSignals()
    signals.install()
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    # A foreground stack writes to its terminal: no log of its own.
    me = Proc("stack", os.getpid(), str(stack.state_dir / "logs" / STACK_LOG) if detached
              else "", started=start_time(os.getpid()))
    procs: list[Proc] = []
    code = 0
    try:
        # Recorded before anything starts, so `down` can stop a stack that is starting.
        _write_state(stack, {"phase": "starting", "stack": asdict(me), "processes": []})
        state = start(settings, serving, stack, web, say=echo)
        procs = _procs(state)
        _write_state(stack, {**state, "phase": "up", "stack": asdict(me),
                             "detached": detached})
        signals.starting = False
        stopper = "`make down`" if detached else "Ctrl-C"
        echo(f"facefleet is up: {state['web'] or '(no web tier)'}  ({stopper} stops it)")
        code = _supervise(procs, signals, lambda now: _write_state(
            stack, {**state, "processes": [asdict(p) for p in now], "phase": "up",
                    "stack": asdict(me), "detached": detached}))
    except _Interrupted as stop:
        echo(f"stopped by {stop} while starting")
    finally:
        signals.starting = False  # from here a signal only sets the flag
        # Whatever happened above; a signal landing after start() returned but before
        # procs was set leaves procs empty: the parent-death signal ends those parts.
        if procs:
            echo("stopping facefleet")
        _stop(list(reversed(procs)))
        _remove_own_state(stack, me)
    return code


def cmd_up(stack: StackSettings) -> int:
    """Detached: run the stack process (``run --detached``) in its own session, with its
    output in ``logs/stack.log``; return once it has recorded itself as up."""
    _refuse_if_up(stack)
    logs = stack.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(logs / STACK_LOG, "ab") as log:
        offset = log.tell()
        # Its own session: it outlives this command, and no signal for this terminal
        # reaches it. Same working directory, so relative settings mean the same.
        proc = subprocess.Popen([sys.executable, "-m", "deploy.stack", "run", "--detached"],
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        state = _wait_recorded(stack, proc)
    except BaseException:  # Ctrl-C while it starts: it stops what it started
        proc.terminate()
        raise
    if state is None:
        with open(logs / STACK_LOG, "rb") as log:
            log.seek(offset)
            echo(f"facefleet: the stack did not start (exit status {proc.returncode}); "
                 f"its output ({logs / STACK_LOG}):\n{log.read().decode(errors='replace')}",
                 err=True)
        return 1
    echo(f"facefleet is up: {state['web'] or '(no web tier)'}  (`make down` stops it)")
    return 0


def _wait_recorded(stack: StackSettings, proc: subprocess.Popen[bytes]
                   ) -> dict[str, Any] | None:
    """The state ``proc`` records once up; None if it exits first (it bounds its own
    start with FACEFLEET_STACK_START_TIMEOUT)."""
    while proc.poll() is None:
        state = _read_state(stack)
        if state is not None and state.get("phase") == "up" and \
                state["stack"]["pid"] == proc.pid:
            return state
        time.sleep(0.2)
    return None


def cmd_down(stack: StackSettings) -> int:
    """Stop the recorded stack: ask its stack process to stop; when that is gone
    already (stale state), stop the recorded processes still running (each checked to
    be the very process recorded, not a later one with its PID)."""
    state = _read_state(stack)
    if state is None:
        echo("no stack is up")
        return 0
    supervisor = _stack_proc(state)
    stale = supervisor is None or not supervisor.alive()
    if supervisor is not None and not stale:
        echo(f"stopping the stack process (pid {supervisor.pid}) and its services")
        _stop([supervisor], DOWN_WAIT_S)
    elif supervisor is not None:
        echo(f"the stack process (pid {supervisor.pid}) is gone: "
             f"{_state_path(stack)} is stale")
    # After a clean stop none is left; after a stale or killed stack, the ones its
    # parent-death signal has not ended (yet).
    left = [p for p in _procs(state) if p.alive()]
    if left:
        echo("stopping what it left running: "
             + ", ".join(f"{p.name} (pid {p.pid})" for p in left))
        _stop(list(reversed(left)))
    elif stale:
        echo("none of its processes is left running")
    _state_path(stack).unlink(missing_ok=True)
    echo("facefleet is down")
    return 0


def cmd_status(stack: StackSettings) -> int:
    """Print the stack's state with each process's liveness; 1 if not all up."""
    state = _read_state(stack)
    if state is None:
        print(json.dumps({"up": False, "state_file": str(_state_path(stack))}, indent=2))
        return 1
    procs = _procs(state)
    supervisor = _stack_proc(state)
    state["processes"] = [{**asdict(p), "alive": p.alive()} for p in procs]
    if supervisor is not None:
        state["stack"] = {**asdict(supervisor), "alive": supervisor.alive()}
        # Its services outlive it only until their parent-death signal lands: stale.
        state["stale"] = not supervisor.alive()
    state["up"] = state.get("phase", "up") == "up" and not state.get("stale") and \
        all(p.alive() for p in procs)
    state["web_answers"] = bool(state.get("web")) and is_listening(str(state["web"]) + "/healthz")
    if state.get("autoscale") and state["up"]:
        state["fleet"] = _fleet_summary(state)
    print(json.dumps(state, indent=2))
    return 0 if state["up"] else 1


def _fleet_summary(state: dict[str, Any]) -> dict[str, Any]:
    """What the controller last published (desired, instances by state, the last
    decision), or why it cannot be read."""
    try:
        settings = Settings.from_env()
        published = read_state(s3_client(settings, "interactive"), state["buckets"]["output"],
                               settings.fleet_state_key)
    except (ConfigError, AutoscalerError) as exc:
        return {"error": str(exc)}
    if published is None:
        return {"error": "the controller has not published its state yet"}
    decisions = published.get("decisions") or [{}]
    return {"updated": published.get("updated"), "desired": published.get("desired"),
            "max": published.get("max"), "counts": published.get("counts"),
            "instances": [f"{i.get('name')} {i.get('state')}"
                          for i in published.get("instances", [])],
            "last_decision": decisions[-1].get("reason")}


COMMANDS = ("run", "up", "down", "status")
#: ``run`` with this option is what ``up`` starts: the same stack, output to its log.
DETACHED = "--detached"


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m deploy.stack run|up|down|status``."""
    args = sys.argv[1:] if argv is None else argv
    detached = args == ["run", DETACHED]
    if not detached and (len(args) != 1 or args[0] not in COMMANDS):
        echo(f"usage: python -m deploy.stack {'|'.join(COMMANDS)}", err=True)
        return 2
    try:
        stack = StackSettings.from_env()
        if args[0] == "down":
            return cmd_down(stack)
        if args[0] == "status":
            return cmd_status(stack)
        # Read here for `up` too, so a bad value fails in this terminal.
        settings, serving, web = Settings.from_env(), ServingSettings.from_env(), \
            WebSettings.from_env()
        if args[0] == "up":
            return cmd_up(stack)
        return cmd_run(settings, serving, stack, web, detached)
    except (ConfigError, StackError, EmbeddedAwsError) as exc:
        echo(f"facefleet: {exc}", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
