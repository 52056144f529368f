"""The live fleet dashboard: ``GET /dashboard`` and the JSON it polls.

- :mod:`webapp.dashboard.views`: the two routes and how the page's JSON is assembled;
- :mod:`webapp.dashboard.monitor`: the web process's Celery-event listener (a thread
  over the SQS+SNS transport, started on the first dashboard request);
- :mod:`webapp.dashboard.stats`: the pure, bounded aggregate of those events;
- :mod:`webapp.dashboard.fleet`: the queue and the autoscaler's published state folded
  into what the page shows (pure).
"""

from __future__ import annotations

from webapp.dashboard.views import init_app

__all__ = ["init_app"]
