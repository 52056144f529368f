"""The embedded stack: moto's server, provisioning, the web tier and the worker fleet.

The fleet is the autoscaler by default: its controller (``python -m autoscaler``)
scales EC2 instances of the embedded endpoint from the queue's depth, and its runner
(``python -m autoscaler.runner``) makes each running instance a local Celery worker.
``FACEFLEET_AUTOSCALE=false`` starts ``FACEFLEET_WORKERS`` fixed workers instead.

    python -m deploy.stack run      # foreground; Ctrl-C stops everything
    python -m deploy.stack up       # detached (state in .stack/state.json, logs in .stack/logs/)
    python -m deploy.stack status   # JSON: endpoint, names, processes alive
    python -m deploy.stack down     # stop a detached stack

Addresses: ``FACEFLEET_AWS_ENDPOINT`` (moto, default http://127.0.0.1:5055) and
``FACEFLEET_WEB_BIND`` (default 127.0.0.1:8000); see :mod:`config.stack` for the rest.
Every process is started in its own session and stopped by its PID, never by name.
moto keeps its state in memory: stopping the stack forgets every bucket and queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any
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
from deploy.embedded_aws import EmbeddedAwsError, is_listening, pin_to, start_moto
from deploy.provision import provision

ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "state.json"


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

    def alive(self) -> bool:
        """True while the process exists and is not a zombie."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# Children started by this process, kept until reaped: a Popen dropped while its child
# runs warns (ResourceWarning) when the stack is driven in-process (bench.scaling, tests).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _spawn(name: str, cmd: list[str], env: dict[str, str], logs: Path,
           cpus: frozenset[int] | None = None) -> Proc:
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        start = log.tell()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=pin_to(cpus))
    _CHILDREN[proc.pid] = proc
    return Proc(name, proc.pid, str(log_path), start)


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
                     service_cpus: frozenset[int] | None = None) -> list[Proc]:
    """Start the embedded runner, then the controller (stopped in reverse: the controller
    first, so no instance changes while the runner warm-shuts its workers).

    ``env`` is the workers' environment (settings, weights URI, FACEFLEET_MAX_INSTANCES
    and the other autoscaler variables); worker logs go to ``logs/workers/<name>.log``.
    The runner's workers are forks of it, so pinning the runner pins them.
    """
    runner = _spawn("runner", [sys.executable, "-m", "autoscaler.runner",
                               "--log-dir", str(logs / "workers")], env, logs, worker_cpus)
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
        say(f"starting the embedded AWS endpoint on {settings.aws_endpoint}")
        moto = start_moto(port, host, log_path=logs / "moto.log", cpus=stack.service_cpus)
        _CHILDREN[moto.pid] = moto
        procs.append(Proc("moto", moto.pid, str(logs / "moto.log")))
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
            procs += spawn_autoscaler(worker_env, logs, stack.worker_cpus, stack.service_cpus)
            _wait_autoscaler(procs, stack.start_timeout)
        else:
            for index in range(stack.workers):
                procs.append(_spawn(f"worker-{index + 1}", [
                    sys.executable, "-m", "celery", "-A", "tasks", "worker",
                    "-n", f"worker-{index + 1}@%h", "--loglevel=INFO",
                    "--without-gossip", "--without-mingle"],
                    worker_env, logs, stack.worker_cpus))
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
                 "pool": serving.worker_pool, "concurrency": serving.worker_concurrency},
        "cpus": {"workers": sorted(stack.worker_cpus) if stack.worker_cpus else None,
                 "services": sorted(stack.service_cpus) if stack.service_cpus else None},
        "started_at": time.time(),
    }


def _procs(state: dict[str, Any]) -> list[Proc]:
    return [Proc(**p) for p in state.get("processes", [])]


def _state_path(stack: StackSettings) -> Path:
    return stack.state_dir / STATE_FILE


def _read_state(stack: StackSettings) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_path(stack).read_text())
        return state
    except FileNotFoundError:
        return None


def cmd_run(settings: Settings, serving: ServingSettings, stack: StackSettings,
            web: WebSettings) -> int:
    """Foreground: start, print the URL, stop everything on Ctrl-C (or if a part dies)."""
    state = start(settings, serving, stack, web)
    procs = _procs(state)
    stopping = False

    def _on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"facefleet is up: {state['web'] or '(no web tier)'}  (Ctrl-C stops it)", flush=True)
    code = 0
    while not stopping:
        dead = [p for p in procs if not p.alive()]
        if dead:
            print(f"{dead[0].name} (pid {dead[0].pid}) exited; see {dead[0].log}",
                  file=sys.stderr)
            code = 1
            break
        time.sleep(0.5)
    print("stopping facefleet", flush=True)
    _stop(list(reversed(procs)))
    return code


def cmd_up(settings: Settings, serving: ServingSettings, stack: StackSettings,
           web: WebSettings) -> int:
    """Detached: start, record the state file, return."""
    old = _read_state(stack)
    if old is not None and any(p.alive() for p in _procs(old)):
        raise StackError(f"a stack is already up (see {_state_path(stack)}); "
                         "`make down` first")
    state = start(settings, serving, stack, web)
    _state_path(stack).write_text(json.dumps(state, indent=2))
    print(f"facefleet is up: {state['web'] or '(no web tier)'}  (`make down` stops it)")
    return 0


def cmd_down(stack: StackSettings) -> int:
    """Stop the detached stack recorded in the state file."""
    state = _read_state(stack)
    if state is None:
        print("no stack is up")
        return 0
    _stop(list(reversed(_procs(state))))
    _state_path(stack).unlink(missing_ok=True)
    print("facefleet is down")
    return 0


def cmd_status(stack: StackSettings) -> int:
    """Print the detached stack's state with each process's liveness; 1 if not all up."""
    state = _read_state(stack)
    if state is None:
        print(json.dumps({"up": False, "state_file": str(_state_path(stack))}, indent=2))
        return 1
    procs = _procs(state)
    state["processes"] = [{**asdict(p), "alive": p.alive()} for p in procs]
    state["up"] = all(p.alive() for p in procs)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m deploy.stack run|up|down|status``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in COMMANDS:
        print(f"usage: python -m deploy.stack {'|'.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        stack = StackSettings.from_env()
        if args[0] == "down":
            return cmd_down(stack)
        if args[0] == "status":
            return cmd_status(stack)
        settings, serving, web = Settings.from_env(), ServingSettings.from_env(), \
            WebSettings.from_env()
        return (cmd_run if args[0] == "run" else cmd_up)(settings, serving, stack, web)
    except (ConfigError, StackError, EmbeddedAwsError) as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
