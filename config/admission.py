"""Settings of the web tier's patience: how long a waiting request may wait, and when
new work is refused at the door (webapp/admission.py says why and how)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.env import ConfigError, dump, load, setting


@dataclass(frozen=True)
class AdmissionSettings:
    """Admission: the wait that follows the work, task deadlines and load shedding."""

    max_wait: float = setting(
        "FACEFLEET_MAX_WAIT", 90.0,
        "longest wait (s) of a request whose task is making progress in the queue; also "
        "its task's deadline (Celery `expires`): past it the task is dropped unrun",
        minimum=1.0, maximum=3600)
    admit_wait: float = setting(
        "FACEFLEET_ADMIT_WAIT", 90.0,
        "a new recognition is refused (503 + Retry-After) when its expected queue wait, "
        "from this process's measured completion rate, exceeds this (s): by default its "
        "deadline, so only work that cannot finish in time is refused",
        minimum=0.1, maximum=3600, derive=lambda seen: seen["max_wait"],
        default_doc="FACEFLEET_MAX_WAIT")
    rate_window: float = setting(
        "FACEFLEET_RATE_WINDOW", 20.0,
        "seconds of completions the service rate is measured over", minimum=1.0,
        maximum=600)

    def check(self) -> None:
        """What spans several settings."""
        if self.admit_wait > self.max_wait:
            raise ConfigError(
                f"FACEFLEET_ADMIT_WAIT={self.admit_wait:g} must not exceed "
                f"FACEFLEET_MAX_WAIT={self.max_wait:g}: work admitted for a longer wait "
                "would expire before it runs")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdmissionSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a child process."""
        return dump(self)
