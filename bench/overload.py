"""Overload without collapse: offered load at 3× capacity for a minute, then back to
half of it, on a running stack (bars: docs/benchmarks.md, "Overload").

    make up                      # or: python -m deploy.stack up
    python -m bench.overload --url http://127.0.0.1:8000
    python -m bench.overload --quick     # 5 + 10 / 20 / 30 s, to check the code path

1. **capacity**: a closed loop of ``--clients`` (8) on the reference protocol, warmed
   for ``--warmup`` s, then measured for ``--capacity-s`` (30) s: capacity = correct
   answers per second in that window; "normal latency" comes from the latencies of the
   requests sent in it (:func:`normal_latency`).
2. **overload**: an open loop (Poisson arrivals, each request on its own thread and its
   own connection) at ``--factor`` (3) × capacity for ``--overload-s`` (60) s. The
   clients honour nothing (no Retry-After, no back-off): they record. Goodput = correct
   answers arriving during the overload per second; bar ≥ 0.8 × capacity.
3. **recovery**: the same open loop at ``--recovery-factor`` (0.5) × capacity for
   ``--recovery-s`` (60) s. Bar: every request sent ≥ ``--recover-within`` (30) s after
   the overload ended is answered correctly within normal latency.

Also checked: every 503 carries Retry-After, and no answer names the wrong person.
The ten distinct CSE546 photos are enrolled under their labels first (through the HTTP
API) unless the gallery already holds every label (``--no-enrol`` skips this). Writes
``results/overload.json`` (figures, bars and every request) and ``results/overload.png``
(per-second offered load, goodput, refusals and latency with the phases marked); prints
one line; exit 1 when a bar is missed, 2 when the run could not be made.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from tqdm import tqdm

from bench.common import RESULTS_DIR, new_figure, percentile, save_figure, summary, write_json
from bench.poster import POST_ERRORS, Answer, Poster, post_once
from bench.workload import WorkloadError, load_images, load_labels

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cse546"
GOODPUT_BAR = 0.8          # goodput during the overload / capacity
RECOVER_WITHIN_S = 30.0    # after the overload, everything sent from then on is normal
# Normal latency = max(NORMAL_FACTOR × p95, p95 + NORMAL_SLACK_S) of the capacity phase:
# twice the p95 absorbs a shared machine's drift when the p95 is large, and the second
# keeps a small p95 (a few hundred ms) from making one scheduling hiccup a failure.
NORMAL_FACTOR, NORMAL_SLACK_S = 2.0, 1.0
# Too few answers in the capacity phase and neither capacity nor latency means anything.
MIN_CAPACITY_ANSWERS = 10

#: What became of a request. ``refused`` kinds are the 503s; ``not_sent`` is the
#: client's own bound on threads (never the server's doing).
KINDS = ("correct", "wrong", "overloaded", "expired", "busy", "unavailable", "timeout",
         "error", "not_sent")
REFUSED = frozenset({"overloaded", "expired", "busy", "unavailable"})
# Markers of the plain-text 503s of ``POST /`` (webapp/recognize.py, webapp/errors.py,
# webapp/services.py): that route answers text, so only the message tells them apart.
TEXT_MARKERS = (("overloaded", "service is overloaded"), ("expired", "before its deadline"),
                ("busy", "already waiting"))


class OverloadError(RuntimeError):
    """The benchmark could not run (nothing answers, data missing, no capacity)."""


# ---- one request ------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One request: when it was sent (s since the run's start), how long its answer took
    (s; None when none came back), and what it was."""

    phase: str
    sent: float
    latency: float | None
    status: int | None
    kind: str
    retry_after: str | None = None
    detail: str = ""

    @property
    def done(self) -> float | None:
        """When its answer arrived (s since the run's start)."""
        return None if self.latency is None else self.sent + self.latency


def classify(status: int | None, body: str, expected: str | None, stem: str,
             protocol: str) -> tuple[str, str]:
    """(kind, detail) of an answer. ``protocol``: ``reference`` (``POST /``, text
    ``<stem>:<label>``) or ``api`` (``POST /api/v1/recognitions``, JSON)."""
    if status is None:
        return "error", body[:200]
    payload: dict[str, Any] = {}
    if protocol == "api":
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = None
        payload = loaded if isinstance(loaded, dict) else {}
    if status == 200:
        if protocol == "api":
            label = payload.get("label")
            ok = label is not None and label == expected
            return ("correct" if ok else "wrong"), f"label {label!r}"
        got_stem, sep, label = body.partition(":")
        ok = bool(sep) and got_stem.strip() == stem and label.strip() == expected
        return ("correct" if ok else "wrong"), body[:200]
    if status == 503:
        if protocol == "api":
            code = str(payload.get("error", ""))
            kind = {"overloaded": "overloaded", "expired": "expired"}.get(code)
            if kind is None and "already waiting" in str(payload.get("message", "")):
                kind = "busy"
            return kind or "unavailable", code or body[:200]
        lowered = body.lower()
        for kind, marker in TEXT_MARKERS:
            if marker in lowered:
                return kind, body[:200]
        return "unavailable", body[:200]
    if status == 504:
        return "timeout", body[:200]
    return "error", f"HTTP {status}: {body[:200]}"


def endpoint(url: str, protocol: str) -> tuple[str, str]:
    """(URL, multipart field) of a recognition on ``protocol``."""
    base = url.rstrip("/")
    if protocol == "api":
        return base + "/api/v1/recognitions", "image"
    return base + "/", "inputFile"


def send(post: Callable[[str, str, bytes], Answer], field: str, name: str, data: bytes,
         expected: str | None, protocol: str, phase: str, t0: float) -> Shot:
    """POST one image with ``post`` (a client's :meth:`Poster.post`, or one on a
    connection of its own); never raises."""
    started = time.perf_counter()
    stem = PurePosixPath(name).stem
    try:
        answer = post(field, name, data)
    except POST_ERRORS as exc:
        return Shot(phase, started - t0, None, None, "error", None,
                    f"{type(exc).__name__}: {str(exc)[:200]}")
    latency = time.perf_counter() - started
    kind, detail = classify(answer.status, answer.text.strip(), expected, stem, protocol)
    return Shot(phase, started - t0, latency, answer.status, kind, answer.retry_after,
                detail)


# ---- arrivals and the two loops ---------------------------------------------------------


def arrival_times(rate: float, start: float, duration: float, *, poisson: bool = True,
                  rng: random.Random | None = None) -> list[float]:
    """Send times in [start, start + duration) at ``rate`` per second: Poisson (random
    gaps, exponential) or fixed gaps."""
    if rate <= 0 or duration <= 0:
        return []
    times: list[float] = []
    rng = rng or random.Random(0)
    t = start + (rng.expovariate(rate) if poisson else 0.0)
    while t < start + duration:
        times.append(t)
        t += rng.expovariate(rate) if poisson else 1.0 / rate
    return times


class Recorder:
    """Collects shots from many threads, with a progress bar."""

    def __init__(self, progress: bool) -> None:
        self.shots: list[Shot] = []
        self._lock = threading.Lock()
        self._bar = tqdm(disable=not progress, unit="req", file=sys.stderr, desc="requests")

    def add(self, shot: Shot) -> None:
        with self._lock:
            self.shots.append(shot)
        self._bar.update(1)

    def snapshot(self) -> list[Shot]:
        """The shots recorded so far (the clients may still be adding)."""
        with self._lock:
            return list(self.shots)

    def close(self) -> list[Shot]:
        self._bar.close()
        with self._lock:
            return sorted(self.shots, key=lambda s: s.sent)


def closed_loop(url: str, field: str, protocol: str,
                images: Sequence[tuple[str, bytes]], labels: Mapping[str, str], clients: int,
                phases: Sequence[tuple[str, float]], t0: float, timeout: float,
                recorder: Recorder) -> None:
    """``clients`` threads, each sending its next request when its last one is answered,
    until the last phase's end; ``phases``: (name, end in s since ``t0``) in order. Each
    client keeps one keep-alive connection, like a browser."""
    counter = iter(range(1 << 62))
    lock = threading.Lock()

    def client() -> None:
        poster = Poster(url, timeout)
        try:
            while True:
                now = time.perf_counter() - t0
                phase = next((name for name, end in phases if now < end), None)
                if phase is None:
                    return
                with lock:
                    i = next(counter)
                name, data = images[i % len(images)]
                recorder.add(send(poster.post, field, name, data,
                                  labels.get(PurePosixPath(name).stem), protocol, phase, t0))
        finally:
            poster.close()

    threads = [threading.Thread(target=client, name=f"closed-{i}", daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def open_loop(url: str, field: str, protocol: str, images: Sequence[tuple[str, bytes]],
              labels: Mapping[str, str], schedule: Sequence[tuple[str, float]], t0: float,
              timeout: float, max_inflight: int, recorder: Recorder,
              offset: int = 0) -> None:
    """Send at the scheduled times (s since ``t0``) whatever the answers do, each request
    on its own thread and connection, at most ``max_inflight`` at once (a request that
    would exceed it is recorded ``not_sent``); return when every answer is in.

    A thread pool would delay sends behind slow answers, which is a closed loop again.
    """
    slots = threading.BoundedSemaphore(max_inflight)
    threads: list[threading.Thread] = []

    def one(phase: str, name: str, data: bytes) -> None:
        try:
            recorder.add(send(partial(post_once, url, timeout=timeout), field, name, data,
                              labels.get(PurePosixPath(name).stem), protocol, phase, t0))
        finally:
            slots.release()

    for i, (phase, at) in enumerate(schedule):
        delay = at - (time.perf_counter() - t0)
        if delay > 0:
            time.sleep(delay)
        name, data = images[(offset + i) % len(images)]
        if not slots.acquire(blocking=False):
            recorder.add(Shot(phase, time.perf_counter() - t0, None, None, "not_sent", None,
                              f"more than {max_inflight} requests in flight"))
            continue
        thread = threading.Thread(target=one, args=(phase, name, data), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


# ---- the figures (pure) -----------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float]:
    """count, p50, p95, p99 and max of seconds (NaN when empty)."""
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values) if values else math.nan}


def answered_between(shots: Iterable[Shot], kinds: Iterable[str], start: float,
                     end: float) -> int:
    """Shots of ``kinds`` whose answer arrived in [start, end)."""
    wanted = set(kinds)
    return sum(1 for s in shots if s.kind in wanted and s.done is not None
               and start <= s.done < end)


def normal_latency(p95: float) -> float:
    """The latency a request is entitled to after the overload: max(2 × p95, p95 + 1 s)
    of the capacity phase (see NORMAL_FACTOR)."""
    return max(NORMAL_FACTOR * p95, p95 + NORMAL_SLACK_S)


def capacity_figures(shots: Sequence[Shot], start: float, end: float) -> dict[str, Any]:
    """Capacity (correct answers per second arriving in [start, end)) and the latency of
    the correct answers to requests sent in that window."""
    latencies = [s.latency for s in shots if s.phase == "capacity" and s.kind == "correct"
                 and s.latency is not None]
    window = end - start
    rate = answered_between(shots, ["correct"], start, end) / window if window > 0 else 0.0
    lat = stats(latencies)
    return {"start_s": start, "end_s": end, "rps": rate, "latency_s": lat,
            "counts": counts(s for s in shots if s.phase == "capacity"),
            "normal_latency_s": normal_latency(lat["p95"]) if latencies else math.nan}


def no_capacity(capacity: Mapping[str, Any]) -> OverloadError:
    """The error for a capacity phase with too few correct answers to measure anything."""
    return OverloadError(f"only {capacity['latency_s']['n']} correct answers in the "
                         f"capacity phase ({capacity['counts']}); is the gallery "
                         "enrolled and the fleet up?")


def counts(shots: Iterable[Shot]) -> dict[str, int]:
    """Shots by kind (every kind listed, zeros included)."""
    seen = Counter(s.kind for s in shots)
    return {kind: seen.get(kind, 0) for kind in KINDS}


def overload_figures(shots: Sequence[Shot], start: float, end: float,
                     capacity: float) -> dict[str, Any]:
    """Goodput (correct answers to overload requests arriving in [start, end) per second)
    against capacity, and what became of the requests sent during the overload. The
    closed loop's last few answers, which arrive as the overload begins, do not count."""
    sent = [s for s in shots if s.phase == "overload"]
    window = end - start
    goodput = answered_between(sent, ["correct"], start, end) / window if window > 0 else 0.0
    by_kind = counts(sent)
    refused = [s for s in sent if s.kind in REFUSED]
    return {
        "start_s": start, "end_s": end, "requests": len(sent),
        "offered_rps": len(sent) / window if window > 0 else math.nan,
        "goodput_rps": goodput,
        "goodput_ratio": goodput / capacity if capacity > 0 else math.nan,
        "counts": by_kind,
        # Shed: refused at the door, before anything was stored.
        "shed_fraction": by_kind["overloaded"] / len(sent) if sent else math.nan,
        "refused_fraction": len(refused) / len(sent) if sent else math.nan,
        "refused_without_retry_after": sum(s.retry_after is None for s in refused),
        "refusal_latency_s": stats([s.latency for s in refused if s.latency is not None]),
        "correct_latency_s": stats([s.latency for s in sent if s.kind == "correct"
                                    and s.latency is not None]),
    }


def in_time(shot: Shot, limit: float) -> bool:
    """Answered correctly within ``limit`` seconds."""
    return shot.kind == "correct" and shot.latency is not None and shot.latency <= limit


def recovery_figures(shots: Sequence[Shot], overload_end: float, limit: float,
                     within: float) -> dict[str, Any]:
    """How the recovery phase went, with send times relative to the overload's end.

    ``recovered_after_s``: the send time of the first request after the last one that
    was not answered correctly within ``limit`` (0 when none missed; None when the
    very last one missed: not recovered in this run). The bar: every request sent
    ``within`` s or more after the overload ended is in time, and there is one at least.
    """
    after = sorted((s for s in shots if s.phase == "recovery"), key=lambda s: s.sent)
    marks = [(s.sent - overload_end, in_time(s, limit)) for s in after]
    missed = [i for i, (_, ok) in enumerate(marks) if not ok]
    recovered: float | None
    if not missed:
        recovered = 0.0
    elif missed[-1] == len(marks) - 1:
        recovered = None
    else:
        recovered = max(0.0, marks[missed[-1] + 1][0])
    late = [(t, ok) for t, ok in marks if t >= within]
    return {
        "requests": len(after), "normal_latency_s": limit, "bar_after_s": within,
        "counts": counts(after),
        "latency_s": stats([s.latency for s in after if s.latency is not None]),
        "recovered_after_s": recovered,
        "missed": len(missed),
        "after_bar": {"requests": len(late), "in_time": sum(ok for _, ok in late)},
        "requests_s": [{"sent_after_s": round(s.sent - overload_end, 3),
                        "latency_s": None if s.latency is None else round(s.latency, 3),
                        "kind": s.kind} for s in after],
    }


def checks(overload: Mapping[str, Any], recovery: Mapping[str, Any],
           everything: Sequence[Shot]) -> dict[str, bool]:
    """Pass/fail of every bar."""
    late = recovery["after_bar"]
    refused = [s for s in everything if s.kind in REFUSED]
    return {
        "goodput": overload["goodput_ratio"] >= GOODPUT_BAR,
        "recovery": late["requests"] > 0 and late["in_time"] == late["requests"],
        "retry_after": all(s.retry_after is not None for s in refused),
        "no_wrong": not any(s.kind == "wrong" for s in everything),
    }


def per_second(shots: Sequence[Shot], start: float, end: float) -> list[dict[str, Any]]:
    """One row per second in [start, end): requests sent (offered), correct answers and
    refusals (by when they arrived), and p50/p99 latency of the answered requests sent
    that second."""
    seconds = max(0, math.ceil(end - start))
    rows: list[dict[str, Any]] = [
        {"t": start + i, "offered": 0, "goodput": 0, "refused": 0, "failed": 0,
         "latencies": []} for i in range(seconds)]

    def row(t: float | None) -> dict[str, Any] | None:
        if t is None or not start <= t < start + seconds:
            return None
        return rows[int(t - start)]

    for s in shots:
        if (sent := row(s.sent)) is not None:
            sent["offered"] += 1
            if s.latency is not None:
                sent["latencies"].append(s.latency)
        if s.done is None:  # no answer (connection error, not sent): a failure when sent
            if sent is not None:
                sent["failed"] += 1
        elif (done := row(s.done)) is not None:
            key = ("goodput" if s.kind == "correct" else "refused" if s.kind in REFUSED
                   else "failed")
            done[key] += 1
    for r in rows:
        latencies = r.pop("latencies")
        r["p50"] = percentile(latencies, 50)
        r["p99"] = percentile(latencies, 99)
    return rows


def one_line(capacity: Mapping[str, Any], overload: Mapping[str, Any],
             recovery: Mapping[str, Any], clients: int) -> str:
    """The summary a person reads at the end of a run."""
    lat, oc = capacity["latency_s"], overload["counts"]
    rec = recovery["recovered_after_s"]
    late = recovery["after_bar"]
    return (f"capacity {capacity['rps']:.2f} req/s ({clients} clients, p50 {lat['p50']:.2f} "
            f"s, p95 {lat['p95']:.2f} s); overload {overload['offered_rps']:.1f} req/s "
            f"offered: goodput {overload['goodput_rps']:.2f} req/s = "
            f"{overload['goodput_ratio']:.2f}x (bar {GOODPUT_BAR}), shed "
            f"{100 * overload['shed_fraction']:.0f}% (503 overloaded {oc['overloaded']}, "
            f"expired {oc['expired']}, busy {oc['busy'] + oc['unavailable']}; 504 "
            f"{oc['timeout']}, wrong {oc['wrong']}, errors {oc['error'] + oc['not_sent']}); "
            f"recovery: normal latency ≤ {recovery['normal_latency_s']:.2f} s, "
            f"{'not recovered' if rec is None else f'recovered {rec:.1f} s after'} "
            f"(bar {recovery['bar_after_s']:g} s), {late['in_time']}/{late['requests']} "
            f"sent ≥ {recovery['bar_after_s']:g} s after in time")


# ---- the stack --------------------------------------------------------------------------


def api_headers(api_key: str | None) -> dict[str, str]:
    """The API key header, when one is set."""
    return {"X-API-Key": api_key} if api_key else {}


def distinct_photos(images: Sequence[tuple[str, bytes]], labels: Mapping[str, str]
                    ) -> dict[str, list[tuple[str, bytes]]]:
    """label → its distinct photos (one per distinct content), in file order."""
    seen: set[bytes] = set()
    by_label: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in images:
        label = labels.get(PurePosixPath(name).stem)
        if label is None or data in seen:
            continue
        seen.add(data)
        by_label.setdefault(label, []).append((name, data))
    return by_label


def ensure_enrolled(url: str, images: Sequence[tuple[str, bytes]], labels: Mapping[str, str],
                    api_key: str | None, say: Callable[[str], None]) -> list[str]:
    """Enrol the labels the gallery lacks (their distinct photos); return those enrolled."""
    base = url.rstrip("/")
    listed = requests.get(base + "/api/v1/identities", headers=api_headers(api_key),
                          timeout=30)
    if listed.status_code != 200:
        raise OverloadError(f"GET /api/v1/identities: HTTP {listed.status_code} "
                            f"{listed.text[:200]}")
    have = {i["name"] for i in listed.json().get("identities", [])}
    missing = {k: v for k, v in distinct_photos(images, labels).items() if k not in have}
    for label, photos in missing.items():
        say(f"enrolling {label} ({len(photos)} photo(s))")
        files = [("image", (name, io.BytesIO(data), "image/jpeg")) for name, data in photos]
        # A worker embeds them; from an empty fleet that waits for an instance to start.
        response = requests.post(f"{base}/api/v1/identities/{label}/images", files=files,
                                 headers=api_headers(api_key), timeout=300)
        if response.status_code != 201:
            raise OverloadError(f"enrolling {label}: HTTP {response.status_code} "
                                f"{response.text[:200]}")
    return sorted(missing)


# ---- the plot ---------------------------------------------------------------------------


def plot(result: Mapping[str, Any], out: Path) -> Path:
    """Per-second rates (top) and latency (bottom, log) with the phases shaded."""
    rows = result["per_second"]
    phases = result["phases"]
    fig, axes = new_figure(2, 1, size=(11, 7.5))
    top, bottom = axes[0][0], axes[1][0]
    t = [r["t"] for r in rows]
    top.plot(t, [r["offered"] for r in rows], color="#4c72b0", label="offered (sent)")
    top.plot(t, [r["goodput"] for r in rows], color="#55a868", label="goodput (correct)")
    top.plot(t, [r["refused"] for r in rows], color="#dd8452", label="refused (503)")
    top.plot(t, [r["failed"] for r in rows], color="#c44e52", label="other failures")
    capacity = result["capacity"]["rps"]
    top.axhline(capacity, color="black", linestyle=":", label=f"capacity {capacity:.2f}")
    top.axhline(GOODPUT_BAR * capacity, color="#55a868", linestyle=":",
                label=f"goodput bar {GOODPUT_BAR}x")
    top.set_ylabel("requests per second")
    ov = result["overload"]
    top.set_title(f"goodput during overload {ov['goodput_ratio']:.2f}x capacity, shed "
                  f"{100 * ov['shed_fraction']:.0f}% of {ov['requests']}")
    for axis in (top, bottom):
        for (name, start, end), colour in zip(phases, ("#eeeeee", "#dddddd", "#fde0c5",
                                                       "#d9ead3"), strict=False):
            axis.axvspan(start, end, color=colour, alpha=0.6, lw=0)
            if axis is top:
                axis.text((start + end) / 2, 0.98, name, transform=axis.get_xaxis_transform(),
                          ha="center", va="top", fontsize=8)
    top.legend(loc="upper right", fontsize=8)
    p50 = [r["p50"] for r in rows]
    p99 = [r["p99"] for r in rows]
    bottom.plot(t, p50, color="#4c72b0", marker=".", label="p50 (by send second)")
    bottom.plot(t, p99, color="#c44e52", marker=".", label="p99")
    rec = result["recovery"]
    bottom.axhline(rec["normal_latency_s"], color="black", linestyle="--",
                   label=f"normal latency {rec['normal_latency_s']:.2f} s")
    bar_at = result["overload"]["end_s"] + rec["bar_after_s"]
    bottom.axvline(bar_at, color="black", linestyle=":",
                   label=f"overload end + {rec['bar_after_s']:g} s")
    if any(not math.isnan(v) and v > 0 for v in p50 + p99):
        bottom.set_yscale("log")
    bottom.set_xlabel("seconds since the start of the run")
    bottom.set_ylabel("latency (s), all answers")
    recovered = rec["recovered_after_s"]
    bottom.set_title("recovered " + ("never" if recovered is None
                                     else f"{recovered:.1f} s after the overload"))
    bottom.legend(loc="upper right", fontsize=8)
    return save_figure(fig, "overload", out)


# ---- the command ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the stack's web tier")
    parser.add_argument("--images", type=Path, default=DEFAULT_DATA / "face_images_1000.zip",
                        help="folder or .zip of images")
    parser.add_argument("--labels", type=Path, default=DEFAULT_DATA / "labels_1000.csv",
                        help="Image,Results CSV of the expected labels")
    parser.add_argument("--protocol", choices=("reference", "api"), default="reference",
                        help="reference: POST / (text); api: POST /api/v1/recognitions")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds of closed loop before capacity is measured")
    parser.add_argument("--capacity-s", type=float, default=30.0, help="capacity phase (s)")
    parser.add_argument("--overload-s", type=float, default=60.0, help="overload phase (s)")
    parser.add_argument("--recovery-s", type=float, default=60.0, help="recovery phase (s)")
    parser.add_argument("--factor", type=float, default=3.0,
                        help="overload arrival rate as a multiple of capacity")
    parser.add_argument("--recovery-factor", type=float, default=0.5,
                        help="recovery arrival rate as a multiple of capacity")
    parser.add_argument("--recover-within", type=float,
                        help=f"seconds after the overload from which every request must be "
                             f"in time (default {RECOVER_WITHIN_S:g}; --quick: half the "
                             "recovery phase)")
    parser.add_argument("--fixed-rate", action="store_true",
                        help="fixed gaps between arrivals instead of Poisson")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals")
    parser.add_argument("--timeout", type=float, default=150.0,
                        help="seconds a client waits for one answer (beyond the stack's "
                             "FACEFLEET_MAX_WAIT, so the stack's answer is what is seen)")
    parser.add_argument("--max-inflight", type=int, default=1500,
                        help="open-loop requests in flight at once (threads); beyond it a "
                             "request is recorded not_sent")
    parser.add_argument("--quick", action="store_true",
                        help="short phases (warm-up 5, capacity 10, overload 20, recovery "
                             "30 s): checks the code path, not the bars")
    parser.add_argument("--no-enrol", action="store_true",
                        help="do not enrol the CSE546 identities the gallery lacks")
    parser.add_argument("--api-key", default=os.environ.get("FACEFLEET_API_KEY"),
                        help="X-API-Key for enrolment (default FACEFLEET_API_KEY)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.capacity_s, args.overload_s, args.recovery_s = 5.0, 10.0, 20.0, 30.0
    if args.recover_within is None:
        args.recover_within = args.recovery_s / 2 if args.quick else RECOVER_WITHIN_S
    if args.clients < 1 or args.max_inflight < 1:
        parser.error("--clients and --max-inflight must be at least 1")
    if min(args.capacity_s, args.overload_s, args.recovery_s, args.factor,
           args.recovery_factor, args.timeout) <= 0 or args.warmup < 0:
        parser.error("phases, factors and --timeout must be positive, --warmup >= 0")
    if args.recover_within >= args.recovery_s:
        parser.error("--recover-within must fall inside the recovery phase")
    return args


def client_cpu() -> float:
    """CPU seconds this process (the clients) has used so far."""
    times = os.times()
    return times.user + times.system


def run(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """The three phases; the result document (raises OverloadError when it cannot)."""
    try:
        images = load_images(args.images)
        labels = load_labels(args.labels)
    except WorkloadError as exc:
        raise OverloadError(str(exc)) from None
    base = args.url.rstrip("/")
    try:
        health = requests.get(base + "/healthz", timeout=10)
    except requests.ConnectionError:
        raise OverloadError(f"nothing answers at {base}; start the stack with `make up`"
                            ) from None
    if health.status_code != 200:
        raise OverloadError(f"the stack is not healthy: {health.text[:300]}")
    enrolled = [] if args.no_enrol else ensure_enrolled(base, images, labels, args.api_key,
                                                        say)
    url, field = endpoint(base, args.protocol)
    recorder = Recorder(progress=not args.no_progress and sys.stderr.isatty())
    # The load average and this process's CPU say how much of a shared machine the run
    # had, and how much of it the clients themselves took.
    load: dict[str, tuple[float, float, float]] = {"start": os.getloadavg()}
    client: dict[str, float] = {}
    cpu = client_cpu()
    t0 = time.perf_counter()

    cap_start = args.warmup
    cap_end = cap_start + args.capacity_s
    say(f"capacity: {args.clients} clients, {args.warmup:g} s warm-up + "
        f"{args.capacity_s:g} s")
    closed = threading.Thread(target=closed_loop, name="closed-loop", daemon=True, args=(
        url, field, args.protocol, images, labels, args.clients,
        [("warmup", cap_start), ("capacity", cap_end)], t0, args.timeout, recorder))
    closed.start()
    # The overload follows the capacity phase without a pause, as a real surge does: the
    # closed loop's last few requests are still being answered as the open loop starts.
    # (A pause of the second or two those answers take reads as idle to the embedded
    # autoscaler, whose grace is 0.5 s: the surge would then meet a fleet of zero.) The
    # capacity is the rate of correct answers that arrived by the phase's end, so it is
    # known then; its latencies are taken once the closed loop has finished.
    time.sleep(max(0.0, cap_end - (time.perf_counter() - t0)))
    rate = answered_between(recorder.snapshot(), ["correct"], cap_start, cap_end) / args.capacity_s
    load["overload_start"] = os.getloadavg()
    if rate <= 0:
        closed.join()
        raise no_capacity(capacity_figures(recorder.close(), cap_start, cap_end))
    ov_start = time.perf_counter() - t0
    ov_end = ov_start + args.overload_s
    rec_end = ov_end + args.recovery_s
    rng = random.Random(args.seed)
    poisson = not args.fixed_rate
    schedule = ([("overload", t) for t in arrival_times(
        args.factor * rate, ov_start, args.overload_s, poisson=poisson, rng=rng)]
        + [("recovery", t) for t in arrival_times(
            args.recovery_factor * rate, ov_end, args.recovery_s,
            poisson=poisson, rng=rng)])
    say(f"capacity {rate:.2f} req/s; overload {args.factor:g}x for "
        f"{args.overload_s:g} s, then {args.recovery_factor:g}x for {args.recovery_s:g} s "
        f"({len(schedule)} requests, open loop)")
    open_loop(url, field, args.protocol, images, labels, schedule, t0, args.timeout,
              args.max_inflight, recorder)
    closed.join()
    shots = recorder.close()
    load["end"] = os.getloadavg()
    client["load"] = round(client_cpu() - cpu, 2)
    capacity = capacity_figures(shots, cap_start, cap_end)
    if capacity["latency_s"]["n"] < MIN_CAPACITY_ANSWERS:
        raise no_capacity(capacity)

    overload = overload_figures(shots, ov_start, ov_end, capacity["rps"])
    recovery = recovery_figures(shots, ov_end, capacity["normal_latency_s"],
                                args.recover_within)
    last = max((s.done or s.sent for s in shots), default=rec_end)
    return {
        "url": base, "protocol": args.protocol, "clients": args.clients,
        "quick": args.quick, "enrolled": enrolled, "load_average": load, "client_cpu_s": client,
        "arrivals": "fixed" if args.fixed_rate else f"poisson (seed {args.seed})",
        "phases": [("warmup", 0.0, cap_start), ("capacity", cap_start, cap_end),
                   ("overload", ov_start, ov_end), ("recovery", ov_end, rec_end)],
        "capacity": capacity, "overload": overload, "recovery": recovery,
        "bars": {"goodput_ratio": GOODPUT_BAR, "recover_within_s": args.recover_within,
                 "normal_latency": f"max({NORMAL_FACTOR:g} x capacity p95, p95 + "
                                   f"{NORMAL_SLACK_S:g} s)"},
        "passed": checks(overload, recovery, shots),
        "per_second": per_second(shots, 0.0, max(rec_end, last)),
        "shots": [asdict(s) for s in shots],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every bar is met, 1 otherwise, 2 when it cannot run."""
    args = parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = run(args, say)
    except OverloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json_path = write_json("overload", result, args.out)
    png_path = plot(result, args.out)
    ok = all(result["passed"].values())
    failed = [k for k, v in result["passed"].items() if not v]
    summary("overload", one_line(result["capacity"], result["overload"], result["recovery"],
                                 args.clients)
            + ("; quick run (indicative)" if args.quick else "")
            + (f"; missed: {', '.join(failed)}" if failed else "")
            + f" -> {json_path}, {png_path}", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
