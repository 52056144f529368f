"""Queue-depth autoscaler: metrics, a pure policy, fleet back ends, the controller loop,
the embedded runner and a policy simulator (docs/autoscaler.md)."""
