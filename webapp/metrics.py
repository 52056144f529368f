"""Prometheus metrics of the web tier, in a registry owned by the app (no globals).

- ``facefleet_http_requests_total{method,route,status}``: requests answered;
- ``facefleet_http_request_duration_seconds{method,route}``: latency histogram;
- ``facefleet_http_requests_waiting``: requests now awaiting a worker's result;
- ``facefleet_queue_depth{state="visible"|"in_flight"}``: the SQS request queue, read
  at scrape time (absent when the queue cannot be read; see
  ``facefleet_queue_depth_up``);
- ``facefleet_worker_visibility_extensions_total{worker}`` and
  ``facefleet_worker_visibility_failures_total{worker}``: each worker's own cumulative
  counts of SQS visibility extensions done and failed (tasks/visibility.py), from its
  ``worker-visibility`` events, as the dashboard's event aggregate last heard them;
  only workers that reported; ``facefleet_events_listener_up`` says whether this
  process's event listener listens (all three absent when dashboard events are off).

Routes are labelled by their rule (``/api/v1/recognitions/<request_id>``), never by the
raw path, so label cardinality stays bounded.

Every metric is per process: the registry is no ``prometheus_client`` multiprocess
registry, and the web tier runs one gunicorn worker by default (config/web.py). The
worker visibility counters are the exception that needs no merging: they are the Celery
workers' own totals, which every web process's listener hears alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from webapp.dashboard.monitor import EventsMonitor

log = logging.getLogger(__name__)

# Latency buckets (seconds) spanning a cached page hit to a cold-fleet wait.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0,
           3.0, 5.0, 10.0, 20.0, 30.0, 60.0)


class QueueDepthCollector(Collector):
    """Reads the queue depth when Prometheus scrapes, so the gauge is never stale."""

    def __init__(self, read_depth: Callable[[], Any]) -> None:
        self._read_depth = read_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the depth by state, and whether reading it worked."""
        up = GaugeMetricFamily("facefleet_queue_depth_up",
                               "1 when the request queue's depth could be read")
        try:
            depth = self._read_depth()
        except Exception as exc:  # any backend failure: report it as a metric, not a 500
            log.warning("queue depth unavailable for /metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily("facefleet_queue_depth",
                                   "Messages in the SQS request queue", labels=["state"])
        family.add_metric(["visible"], depth.visible)
        family.add_metric(["in_flight"], depth.in_flight)
        yield family


class WorkerVisibilityCollector(Collector):
    """Each Celery worker's visibility-extension counts, as Flower exports Celery event
    metrics: read from the dashboard's event aggregate when Prometheus scrapes.

    The values are the worker's cumulative totals as of its last ``worker-visibility``
    event (counters: they restart at 0 with the worker, which ``rate()`` handles). A
    worker appears once it reported, and leaves with the aggregate's forgetting of
    offline workers. Nothing is yielded when dashboard events are off: there is no
    listener to hear the workers, and an always-zero series would hide that.
    """

    def __init__(self, monitor: EventsMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the listener's state and both counters by worker."""
        if not self._monitor.enabled:
            return
        up = GaugeMetricFamily("facefleet_events_listener_up",
                               "1 while this web process listens to Celery events")
        up.add_metric([], 1 if self._monitor.status()["state"] == "listening" else 0)
        yield up
        extended = CounterMetricFamily(
            "facefleet_worker_visibility_extensions",
            "SQS message visibility extensions the worker made (its own cumulative count)",
            labels=["worker"])
        failed = CounterMetricFamily(
            "facefleet_worker_visibility_failures",
            "SQS message visibility extensions the worker could not make (endpoint "
            "unreachable or refusing); its messages may be delivered again while held",
            labels=["worker"])
        for worker in self._monitor.snapshot()["workers"]:
            # None: the worker sent no such count (yet); it is left out, not shown as 0.
            if worker["visibility_extended"] is not None:
                extended.add_metric([worker["hostname"]], worker["visibility_extended"])
            if worker["visibility_failed"] is not None:
                failed.add_metric([worker["hostname"]], worker["visibility_failed"])
        yield extended
        yield failed


class WebMetrics:
    """The app's registry and instruments, plus the hooks that feed them."""

    def __init__(self, read_depth: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("facefleet_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("facefleet_http_request_duration_seconds",
                                 "Time to answer an HTTP request", ["method", "route"],
                                 buckets=BUCKETS, registry=self.registry)
        self.waiting = Gauge("facefleet_http_requests_waiting",
                             "Requests now awaiting a worker's result", registry=self.registry)
        self.registry.register(QueueDepthCollector(read_depth))

    def watch_workers(self, monitor: EventsMonitor) -> None:
        """Export the workers' visibility-extension counts heard by ``monitor``."""
        self.registry.register(WorkerVisibilityCollector(monitor))

    def init_app(self, app: Flask) -> None:
        """Time every request and count it by route and status."""

        @app.before_request
        def _start_timer() -> None:
            g.facefleet_started = time.perf_counter()

        @app.after_request
        def _record(response: Response) -> Response:
            started = g.pop("facefleet_started", None)
            if started is not None:
                route = request.url_rule.rule if request.url_rule else "<unmatched>"
                self.latency.labels(request.method, route).observe(
                    time.perf_counter() - started)
                self.requests.labels(request.method, route, str(response.status_code)).inc()
            return response
