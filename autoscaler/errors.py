"""Errors of the autoscaler; all derive from AutoscalerError."""

from __future__ import annotations


class AutoscalerError(RuntimeError):
    """Root of the autoscaler's errors."""


class MetricsError(AutoscalerError):
    """The queue load could not be read; retryable. The controller holds its size."""


class FleetError(AutoscalerError):
    """An EC2 call failed or returned something unusable; retryable on the next tick."""
