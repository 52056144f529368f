"""Errors of the autoscaler; all derive from AutoscalerError."""

from __future__ import annotations

from config.errors import FacefleetError


class AutoscalerError(FacefleetError):
    """Root of the autoscaler's errors."""

    default_code = "autoscaler"


class MetricsError(AutoscalerError):
    """The queue load could not be read; retryable. The controller holds its size."""

    default_code = "metrics"


class FleetError(AutoscalerError):
    """An EC2 call failed or returned something unusable; retryable on the next tick."""

    default_code = "fleet"


class StateError(AutoscalerError):
    """The published fleet state could not be written, read, or is not of its schema."""

    default_code = "fleet_state"
