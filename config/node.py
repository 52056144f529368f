"""Settings of one AWS instance's own commands (``python -m deploy.node``): where its
instance metadata is, and how often the spot watch looks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.env import Invalid, load, setting


def parse_url(raw: str) -> str:
    """An http(s) URL without a trailing slash."""
    if not raw.startswith(("http://", "https://")):
        raise Invalid("must be an http(s) URL")
    return raw.rstrip("/")


@dataclass(frozen=True)
class NodeSettings:
    """An instance's commands: instance metadata and the spot watch."""

    imds_endpoint: str = setting(
        "FACEFLEET_IMDS_ENDPOINT", "http://169.254.169.254",
        "the instance metadata service (IMDSv2); a test points it at a stand-in",
        parse=parse_url)
    spot_poll_s: float = setting(
        "FACEFLEET_SPOT_POLL_SECONDS", 5.0,
        "seconds between two looks for a spot interruption notice (it comes 2 minutes "
        "ahead)", minimum=0.1, maximum=60.0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NodeSettings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)
