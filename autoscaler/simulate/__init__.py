"""Discrete-event simulator of the worker fleet, to compare scaling policies on cost
(instance-seconds) and latency (mean/p95/p99) on standard traces.

``python -m autoscaler.simulate --help``. Our policy runs the very ``decide`` and
``plan`` functions the controller runs.
"""
