"""Typed readers for environment variables, with errors a person can act on.

Each reader takes the mapping explicitly (``os.environ`` in production, a dict in
tests) so that parsing stays pure and testable.
"""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def get_str(env: Mapping[str, str], name: str, default: str) -> str:
    """Return ``env[name]`` stripped, or ``default`` when unset or empty."""
    value = env.get(name, "").strip()
    return value or default


def get_int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """Return ``env[name]`` as an int within [minimum, maximum], or ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    _check_range(name, value, minimum, maximum)
    return value


def get_float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Return ``env[name]`` as a float within [minimum, maximum], or ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    _check_range(name, value, minimum, maximum)
    return value


def get_optional_float(
    env: Mapping[str, str], name: str, *, minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    """Return ``env[name]`` as a float, or None when unset."""
    if not env.get(name, "").strip():
        return None
    return get_float(env, name, 0.0, minimum=minimum, maximum=maximum)


def get_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Return ``env[name]`` as a bool (1/0, true/false, yes/no, on/off)."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _check_range(
    name: str, value: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")


def get_cpus(env: Mapping[str, str], name: str, available: frozenset[int]
             ) -> frozenset[int] | None:
    """Return ``env[name]`` as a set of CPU numbers, or None when unset.

    The syntax is taskset's ``-c`` list: ``1``, ``0,2`` or ``0-3``. Every CPU must be in
    ``available`` (the CPUs this process may run on), so a typo fails here rather than
    as an EINVAL from ``sched_setaffinity`` in a child.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return None
    cpus: set[int] = set()
    for part in raw.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a CPU list such as 1, 0,2 or 0-3"
                              ) from None
        if low < 0 or high < low:
            raise ConfigError(f"{name}={raw!r}: {part.strip()!r} is not a CPU range")
        cpus.update(range(low, high + 1))
    missing = sorted(cpus - available)
    if missing:
        raise ConfigError(f"{name}={raw!r} names CPU(s) {missing} that this machine does not "
                          f"offer; available: {sorted(available)}")
    return frozenset(cpus)
