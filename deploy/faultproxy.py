"""A fault proxy on loopback in front of the embedded AWS endpoint (issue 12).

    python -m deploy.faultproxy --listen 127.0.0.1:5056 --upstream http://127.0.0.1:5055 \\
        --fault throttle:p=0.2,service=sqs --fault latency:p=1,delay_ms=50,jitter_ms=20

Every process that is given the proxy's URL as its AWS endpoint talks to moto's server
through it. The proxy forwards each request faithfully (keep-alive, the client's Host
header, so moto's queue URLs point back at the proxy) and injects, on a fraction ``p``
of the requests of one service or all, optionally only for some operations:

- ``latency``: a delay of ``delay_ms`` plus up to ``jitter_ms`` before forwarding;
- ``reset``: the client's connection is closed with a TCP RST, unanswered;
- ``throttle``: the service's own throttling answer, not forwarded: SQS
  ``RequestThrottled`` (JSON or query protocol, as the request came), S3 ``SlowDown``
  503, EC2 ``RequestLimitExceeded`` 503, SNS and IAM ``Throttling``;
- ``error``: the service's internal error, 500 (IAM calls it ``ServiceFailure``).

Every code is one botocore's standard retry mode retries (a throttling code, or a
5xx status). Services are told by the request's SigV4 credential scope and operations
named as :func:`deploy.iam_audit.describe_request` names them: the IAM actions
(``SendMessage``, ``ReceiveMessage``, ``GetObject`` for GET and HEAD of an object,
``ListBucket``, ``Publish``, ``RunInstances``...).

Faults change at run time on the proxy's own control path, never forwarded:
``GET /__faults__`` (faults, seed, counters per service), ``POST /__faults__`` with
``{"faults": [{"kind": "throttle", "p": 0.5, "service": "sqs"}], "seed": 1}``,
``DELETE /__faults__`` (no faults, counters zeroed). :class:`FaultControl` is the
client, :class:`FaultProxy` runs it in a thread, :func:`start_subprocess` as a process.

Why not a library: Toxiproxy (the usual choice) is a Go server that no PyPI wheel
ships (``toxiproxy-python`` is only its HTTP client), and it works on TCP streams, so
it cannot answer with an AWS error. mitmproxy can, but its release for Python 3.11
(11.0.2) caps Flask, tornado (Flower's), cryptography and pyparsing below ours. What we
need is a loopback HTTP relay with three branches: the standard library's server and
client suffice.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from config.errors import FacefleetError
from deploy.embedded_aws import REPO_ROOT, free_port, stop_process
from deploy.iam_audit import describe_request
from deploy.lifetime import child_setup

KINDS = ("latency", "reset", "throttle", "error")
SERVICES = ("s3", "sqs", "sns", "ec2", "iam")
#: Not a bucket name (S3 forbids "_"), nor an SQS queue path, so nothing AWS owns.
CONTROL_PATH = "/__faults__"
COUNTERS = ("forwarded", "delayed", "reset", "throttled", "errored", "upstream_failed")
#: Longer than an SQS long poll (20 s), so a waiting receive is never cut short.
UPSTREAM_TIMEOUT = 65.0
#: Per connection, not end to end: the proxy sets its own framing on each side.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                        "te", "trailer", "upgrade", "expect", "content-length"})


class FaultProxyError(FacefleetError):
    """A bad fault, or the proxy did not start or refused a control request."""

    default_code = "fault_proxy"


# ---- what to inject (pure) ----------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` on a fraction ``p`` of the matching requests."""

    kind: str
    p: float = 1.0
    service: str | None = None
    operations: frozenset[str] = frozenset()
    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    def matches(self, call: Call) -> bool:
        """True when this fault concerns ``call`` (its service and operation)."""
        return ((self.service is None or self.service == call.service)
                and (not self.operations or call.operation in self.operations))

    def to_json(self) -> dict[str, Any]:
        """The control endpoint's form (what :func:`parse_fault` reads)."""
        return {"kind": self.kind, "p": self.p, "service": self.service,
                "operations": sorted(self.operations), "delay_ms": self.delay_ms,
                "jitter_ms": self.jitter_ms}


def parse_fault(raw: object) -> Fault:
    """A Fault from its JSON form; FaultProxyError says what is wrong."""
    if not isinstance(raw, Mapping):
        raise FaultProxyError(f"a fault is a JSON object, not {raw!r}")
    unknown = set(raw) - set(Fault.__dataclass_fields__)
    if unknown:
        raise FaultProxyError(f"unknown fault field(s) {sorted(unknown)}; "
                              f"known: {sorted(Fault.__dataclass_fields__)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FaultProxyError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
    service = raw.get("service")
    if service is not None and service not in SERVICES:
        raise FaultProxyError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    operations = raw.get("operations", [])
    if isinstance(operations, str):
        operations = [operations]
    if not isinstance(operations, list) or not all(isinstance(o, str) for o in operations):
        raise FaultProxyError("operations is a list of operation names")
    numbers = {name: _number(raw, name, default)
               for name, default in (("p", 1.0), ("delay_ms", 0.0), ("jitter_ms", 0.0))}
    if not 0.0 <= numbers["p"] <= 1.0:
        raise FaultProxyError(f"p is a probability in [0, 1], not {numbers['p']}")
    if numbers["delay_ms"] < 0 or numbers["jitter_ms"] < 0:
        raise FaultProxyError("delay_ms and jitter_ms are not negative")
    return Fault(kind=kind, service=service, operations=frozenset(operations), **numbers)


def _number(raw: Mapping[str, Any], name: str, default: float) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultProxyError(f"{name} is a number, not {value!r}")
    return float(value)


def parse_fault_spec(text: str) -> Fault:
    """A Fault from the command line: a JSON object, or ``KIND[:key=value,...]`` with
    ``operations`` separated by ``+`` (``throttle:p=0.5,service=sqs,operations=A+B``)."""
    if text.lstrip().startswith("{"):
        try:
            return parse_fault(json.loads(text))
        except ValueError as exc:
            raise FaultProxyError(f"fault {text!r} is not valid JSON: {exc}") from None
    kind, _, rest = text.partition(":")
    raw: dict[str, Any] = {"kind": kind}
    for item in filter(None, rest.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise FaultProxyError(f"{item!r} in fault {text!r} is not key=value")
        raw[name] = (value.split("+") if name == "operations" else
                     value if name == "service" else _float(value, name))
    return parse_fault(raw)


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FaultProxyError(f"{name} is a number, not {value!r}") from None


@dataclass(frozen=True)
class Call:
    """What a request is: its service ("other" when unsigned), operation and protocol."""

    service: str
    operation: str = ""
    json_protocol: bool = False


def identify(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Call:
    """The Call an HTTP request makes (``headers`` case-insensitive, as http.server's)."""
    described = describe_request(method, target, headers, body)
    service, _, operation = described.action.partition(":") if described else ("other", "", "")
    return Call(service if service in SERVICES else "other", operation,
                json_protocol=bool(headers.get("X-Amz-Target")))


@dataclass(frozen=True)
class Decision:
    """What to do with one request: wait ``delay_s``, then ``action`` (None: forward)."""

    delay_s: float = 0.0
    action: str | None = None


def decide(faults: Iterable[Fault], call: Call, rng: random.Random) -> Decision:
    """Draw each matching fault in order: latencies add up; the first reset, throttle
    or error that fires ends the draw (later faults draw nothing, so a seed replays)."""
    delay_ms = 0.0
    for fault in faults:
        if not fault.matches(call) or rng.random() >= fault.p:
            continue
        if fault.kind != "latency":
            return Decision(delay_ms / 1000, fault.kind)
        delay_ms += fault.delay_ms + rng.uniform(0, fault.jitter_ms)
    return Decision(delay_ms / 1000)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer the proxy makes itself."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


# (status, code, message) per service: what AWS answers when it throttles, or fails.
THROTTLING = {"s3": (503, "SlowDown", "Please reduce your request rate."),
              "sqs": (400, "RequestThrottled", "Rate exceeded"),
              "ec2": (503, "RequestLimitExceeded", "Request limit exceeded."),
              "sns": (400, "Throttling", "Rate exceeded"),
              "iam": (400, "Throttling", "Rate exceeded"),
              "other": (400, "Throttling", "Rate exceeded")}
INTERNAL = {"iam": (500, "ServiceFailure", "Internal failure, please retry.")}
_INTERNAL_DEFAULT = (500, "InternalError", "We encountered an internal error. Please try again.")
_XMLNS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
          "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
          "iam": "https://iam.amazonaws.com/doc/2010-05-08/"}


def error_reply(call: Call, kind: str) -> Reply:
    """The service's own ``throttle`` or ``error`` answer to ``call``, in its protocol."""
    status, code, message = (THROTTLING[call.service] if kind == "throttle"
                             else INTERNAL.get(call.service, _INTERNAL_DEFAULT))
    request_id = str(uuid.uuid4())
    fault = "Sender" if status < 500 else "Receiver"
    if call.json_protocol:
        # botocore reads the code from x-amzn-query-error for query-compatible services.
        body = json.dumps({"__type": f"com.amazonaws.{call.service}#{code}",
                           "message": message}).encode()
        return Reply(status, (("Content-Type", "application/x-amz-json-1.0"),
                              ("x-amzn-query-error", f"{code};{fault}"),
                              ("x-amzn-RequestId", request_id)), body)
    if call.service == "s3":
        xml = (f"<Error><Code>{code}</Code><Message>{message}</Message>"
               f"<RequestId>{request_id}</RequestId></Error>")
        headers: tuple[tuple[str, str], ...] = (("x-amz-request-id", request_id),)
    elif call.service == "ec2":
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
               f"</Error></Errors><RequestID>{request_id}</RequestID></Response>")
        headers = ()
    else:
        xmlns = f' xmlns="{_XMLNS[call.service]}"' if call.service in _XMLNS else ""
        xml = (f"<ErrorResponse{xmlns}><Error><Type>{fault}</Type><Code>{code}</Code>"
               f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
               "</ErrorResponse>")
        headers = (("x-amzn-RequestId", request_id),)
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + xml.encode()
    return Reply(status, (("Content-Type", "application/xml"), *headers), body)


@dataclass
class FaultState:
    """The faults in force, the seeded draw, and the counters; shared by all threads."""

    faults: tuple[Fault, ...] = ()
    seed: int = 0
    counters: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)

    def configure(self, faults: Sequence[Fault], seed: int | None = None,
                  reset_counters: bool = False) -> None:
        """Put ``faults`` in force; a ``seed`` restarts the draw from it."""
        with self._lock:
            self.faults = tuple(faults)
            if seed is not None:
                self.seed, self._rng = seed, random.Random(seed)
            if reset_counters:
                self.counters = {}

    def choose(self, call: Call) -> Decision:
        """The decision for one request, counted."""
        with self._lock:
            decision = decide(self.faults, call, self._rng)
        if decision.delay_s:
            self.count(call.service, "delayed")
        if decision.action is not None:
            self.count(call.service, {"reset": "reset", "throttle": "throttled",
                                      "error": "errored"}[decision.action])
        return decision

    def count(self, service: str, what: str) -> None:
        """Add one to ``what`` of ``service``."""
        with self._lock:
            counts = self.counters.setdefault(service, dict.fromkeys(COUNTERS, 0))
            counts[what] += 1

    def to_json(self) -> dict[str, Any]:
        """What ``GET /__faults__`` answers."""
        with self._lock:
            return {"faults": [f.to_json() for f in self.faults], "seed": self.seed,
                    "counters": {s: dict(c) for s, c in self.counters.items()}}


def parse_control(body: bytes) -> tuple[list[Fault], int | None, bool]:
    """A ``POST /__faults__`` body: the faults, the seed (None: keep), reset_counters."""
    try:
        raw = json.loads(body or b"null")
    except ValueError as exc:
        raise FaultProxyError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("faults"), list):
        raise FaultProxyError('the body is {"faults": [...], "seed": N, "reset_counters": B}')
    unknown = set(raw) - {"faults", "seed", "reset_counters"}
    if unknown:
        raise FaultProxyError(f"unknown field(s) {sorted(unknown)}")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultProxyError(f"seed is an integer, not {seed!r}")
    return [parse_fault(f) for f in raw["faults"]], seed, bool(raw.get("reset_counters"))


# ---- the proxy (I/O) ----------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listen: tuple[str, int], upstream: str, state: FaultState) -> None:
        url = urlsplit(upstream)
        if url.scheme != "http" or not url.hostname:
            raise FaultProxyError(f"upstream {upstream!r} is not an http://host:port URL")
        if not _is_loopback(listen[0]):
            raise FaultProxyError(f"the fault proxy listens on loopback only, not {listen[0]}")
        self.upstream = (url.hostname, url.port or 80)
        self.state = state
        super().__init__(listen, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (a killed worker's open long poll) is
        # routine here: one line, not socketserver's traceback.
        error = sys.exc_info()[1]
        if isinstance(error, BrokenPipeError | ConnectionResetError):
            print(f"client {client_address[0]}:{client_address[1]} went away: "
                  f"{type(error).__name__}", file=sys.stderr, flush=True)
            return
        super().handle_error(request, client_address)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for botocore's PUTs
    server: _Server
    _upstream: http.client.HTTPConnection | None = None  # this client connection's own

    def _serve(self) -> None:
        body = self._read_body()
        if urlsplit(self.path).path == CONTROL_PATH:
            self._control(body)
            return
        call = identify(self.command, self.path, self.headers, body)  # type: ignore[arg-type]
        decision = self.server.state.choose(call)
        time.sleep(decision.delay_s)
        if decision.action == "reset":
            self._reset()
        elif decision.action is not None:
            self._send(error_reply(call, decision.action))
        else:
            self._forward(call, body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, then the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _control(self, body: bytes) -> None:
        state = self.server.state
        try:
            if self.command == "POST":
                state.configure(*parse_control(body))
            elif self.command == "DELETE":
                state.configure([], reset_counters=True)
            elif self.command != "GET":
                raise FaultProxyError(f"{CONTROL_PATH} takes GET, POST or DELETE", "405")
        except FaultProxyError as exc:
            status = 405 if exc.code == "405" else 400
            self._send(Reply(status, (("Content-Type", "application/json"),),
                             json.dumps({"error": exc.message}).encode()))
            return
        self._send(Reply(200, (("Content-Type", "application/json"),),
                         json.dumps(state.to_json()).encode()))

    def _reset(self) -> None:
        # Linger 0: closing sends RST, not FIN. rfile holds the socket open until closed.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()
        self.connection.close()

    def _forward(self, call: Call, body: bytes) -> None:
        try:
            response, payload = self._relay(body)
        except OSError:  # moto down or gone: what a load balancer answers then
            self.server.state.count(call.service, "upstream_failed")
            self._send(Reply(502, (), b""))
            return
        self.server.state.count(call.service, "forwarded")
        headers = tuple(response.getheaders())
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self._send(Reply(response.status, headers, payload), response.reason, length)

    def _relay(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        """Send the request upstream on this connection's keep-alive connection."""
        for attempt in range(2):
            if self._upstream is None:
                host, port = self.server.upstream
                self._upstream = http.client.HTTPConnection(host, port, UPSTREAM_TIMEOUT)
            conn = self._upstream
            reused = conn.sock is not None
            try:
                conn.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        conn.putheader(name, value)
                if body or "Content-Length" in self.headers or self.command in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                response = conn.getresponse()
                return response, response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A kept connection that the server closed while idle: the request never
                # got there, so it goes once more on a new one. Anything else fails it.
                if attempt or not (reused and isinstance(exc, ConnectionError)):
                    raise OSError(f"upstream: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _send(self, reply: Reply, reason: str | None = None, length: str | None = None) -> None:
        self.send_response_only(reply.status, reason)
        for name, value in reply.headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if reply.status not in (204, 304):
            self.send_header("Content-Length", length or str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every AWS call would be a line."""


class FaultProxy:
    """The proxy in a thread of this process: ``with FaultProxy(moto_url) as proxy:``."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0,
                 faults: Sequence[Fault] = (), seed: int = 0) -> None:
        self.state = FaultState(tuple(faults), seed)
        self._server = _Server((host, port), upstream, self.state)
        self._thread = threading.Thread(target=self.serve,
                                        name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        """The proxy's endpoint URL, for Settings.aws_endpoint."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self) -> None:
        """Serve in this thread until :meth:`stop` (from another) or an exception."""
        self._server.serve_forever()

    def start(self) -> FaultProxy:
        """Serve in a daemon thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting; connections already open end when their clients close them."""
        if self._thread.is_alive():  # shutdown() waits for a serve loop to end
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FaultControl:
    """A client of a running proxy's control path (thread or process alike)."""

    def __init__(self, proxy_url: str, timeout: float = 5.0) -> None:
        self.url = proxy_url.rstrip("/") + CONTROL_PATH
        self.timeout = timeout

    def set(self, faults: Iterable[Fault | Mapping[str, Any]], seed: int | None = None,
            reset_counters: bool = False) -> dict[str, Any]:
        """Put ``faults`` in force (replacing the previous ones); returns the state."""
        body = {"faults": [f.to_json() if isinstance(f, Fault) else dict(f) for f in faults],
                "seed": seed, "reset_counters": reset_counters}
        return self._call("POST", json.dumps(body).encode())

    def clear(self) -> dict[str, Any]:
        """No faults, counters zeroed."""
        return self._call("DELETE")

    def state(self) -> dict[str, Any]:
        """The faults, seed and counters."""
        return self._call("GET")

    def counters(self, service: str) -> dict[str, int]:
        """The counters of one service (all zero before its first request)."""
        counts: dict[str, int] = self.state()["counters"].get(service, {})
        return {name: counts.get(name, 0) for name in COUNTERS}

    def _call(self, method: str, body: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=body, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the connection
                raise FaultProxyError(json.load(exc).get("error", str(exc))) from None
        except (urllib.error.URLError, OSError) as exc:
            raise FaultProxyError(f"no fault proxy answers at {self.url}: {exc}") from None


def start_subprocess(upstream: str, port: int | None = None,
                     faults: Sequence[Fault] = (), seed: int = 0,
                     timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m deploy.faultproxy`` on a loopback port; returns it and its URL once it
    answers. The caller stops it by its PID (:func:`deploy.embedded_aws.stop_process`);
    it gets SIGTERM when this process dies."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "deploy.faultproxy", "--listen", f"127.0.0.1:{port}",
           "--upstream", upstream, "--seed", str(seed)]
    for fault in faults:
        cmd += ["--fault", json.dumps(fault.to_json())]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, cwd=REPO_ROOT,
                            start_new_session=True, preexec_fn=child_setup())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            FaultControl(url, timeout=0.5).state()
            return proc, url
        except FaultProxyError:
            time.sleep(0.05)
    stop_process(proc)
    raise FaultProxyError(f"the fault proxy did not answer on {url} (exit {proc.returncode})")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m deploy.faultproxy",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (loopback)")
    parser.add_argument("--upstream", required=True, help="moto's URL, http://HOST:PORT")
    parser.add_argument("--fault", action="append", default=[],
                        help="KIND[:p=P,service=S,operations=A+B,delay_ms=D,jitter_ms=J] "
                             "or its JSON object; repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draw")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        faults = [parse_fault_spec(spec) for spec in args.fault]
        proxy = FaultProxy(args.upstream, host or "127.0.0.1", int(port), faults, args.seed)
    except (FaultProxyError, ValueError, OSError) as exc:
        parser.error(str(exc))

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # Both signals before the address is printed: whoever read it may signal at once.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with contextlib.suppress(SystemExit):
        print(f"fault proxy on {proxy.url} -> {args.upstream}", flush=True)
        proxy.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
