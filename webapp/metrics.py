"""Prometheus metrics of the web tier, in a registry owned by the app (no globals).

- ``facefleet_http_requests_total{method,route,status}``: requests answered;
- ``facefleet_http_request_duration_seconds{method,route}``: latency histogram;
- ``facefleet_http_requests_waiting``: requests now awaiting a worker's result;
- ``facefleet_queue_depth{state="visible"|"in_flight"}``: the SQS request queue, read
  at scrape time (absent when the queue cannot be read; see
  ``facefleet_queue_depth_up``).

Routes are labelled by their rule (``/api/v1/recognitions/<request_id>``), never by the
raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
