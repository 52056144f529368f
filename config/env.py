"""Settings declared once: each is a dataclass field that names its environment variable.

A settings class is a frozen dataclass whose fields are made with :func:`setting`::

    @dataclass(frozen=True)
    class WebSettings:
        threads: int = setting("FACEFLEET_WEB_THREADS", 160, minimum=4, maximum=4096,
                               doc="threads per gunicorn worker")

One generic reader (:func:`load`) turns an environment into an instance, one generic
writer (:func:`dump`) turns an instance back into the variables that reproduce it (for
the processes a parent starts), and :func:`reference` renders every setting as the
table in ``docs/configuration.md``. The field's type says how its text is parsed
(``int``, ``float``, ``bool``, ``str``, ``Path``, ``tuple[str, ...]``, and ``X | None``
where empty means None); a field may bring its own parser, a default that depends on
settings read before it, and a writer; a class may check what spans several fields in
a ``check()`` method. Every failure is one :class:`ConfigError` naming the variable.

Why not pydantic-settings: its errors are one ValidationError listing pydantic's own
wording, while ours name the variable and the fix in one line; it would be a new
dependency of every process for what fits in this module; and the settings here are
plain frozen dataclasses that tests build directly, which pydantic models are not.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

from config.errors import FacefleetError

#: Metadata key of a setting's declaration in ``dataclasses.field(metadata=...)``.
KEY = "facefleet.setting"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

T = TypeVar("T")


class ConfigError(FacefleetError, ValueError):
    """A configuration value is missing or malformed; the message names the variable."""

    default_code = "bad_config"


class Invalid(ValueError):
    """Raised by a parser: its text completes ``NAME='raw' ...`` into a ConfigError."""


@dataclass(frozen=True)
class Var:
    """How one field is read from and written to the environment."""

    env: str
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    #: Text → value; raises :class:`Invalid`. None: by the field's type.
    parse: Callable[[str], Any] | None = None
    #: Value → text. None: by the value's type.
    write: Callable[[Any], str] | None = None
    #: The default from the fields read before this one (None: the field's default).
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    #: How the default reads in the reference table when it is derived.
    default_doc: str | None = None
    #: False for fields another class owns the variable of (written by that class).
    exported: bool = True


def setting(env: str, default: Any, doc: str, *, minimum: float | None = None,
            maximum: float | None = None, parse: Callable[[str], Any] | None = None,
            write: Callable[[Any], str] | None = None,
            derive: Callable[[Mapping[str, Any]], Any] | None = None,
            default_doc: str | None = None, exported: bool = True) -> Any:
    """A dataclass field read from the environment variable ``env`` (see the module
    docstring); ``default`` is what an unset or empty variable means."""
    var = Var(env, doc, minimum, maximum, parse, write, derive, default_doc, exported)
    return dataclasses.field(default=default, metadata={KEY: var})


def profile(embedded: Any, aws: Any) -> Callable[[Mapping[str, Any]], Any]:
    """A ``derive`` that picks the default by the ``embedded`` field read before it."""
    return lambda seen: embedded if seen.get("embedded", True) else aws


def variables(cls: type) -> list[tuple[dataclasses.Field[Any], Var]]:
    """The settings of ``cls`` in declaration order, each with its declaration."""
    return [(f, f.metadata[KEY]) for f in dataclasses.fields(cls) if KEY in f.metadata]


S = TypeVar("S")


def load(cls: type[S], env: Mapping[str, str] | None = None) -> S:
    """Read every setting of ``cls`` from ``env`` (default: the process environment).

    Raises ConfigError naming the variable at fault.
    """
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    seen: dict[str, Any] = {}
    for field, var in variables(cls):
        raw = env.get(var.env, "").strip()
        if not raw:
            seen[field.name] = var.derive(seen) if var.derive is not None else field.default
            continue
        parse = var.parse or parser_for(hints[field.name])
        try:
            value = parse(raw)
        except Invalid as err:
            raise ConfigError(f"{var.env}={raw!r} {err}") from None
        check_range(var, value)
        seen[field.name] = value
    instance = cls(**seen)
    check = getattr(instance, "check", None)
    if check is not None:
        check()
    return instance


def dump(instance: Any) -> dict[str, str]:
    """The variables that make :func:`load` return ``instance`` again (exported ones)."""
    out = {}
    for field, var in variables(type(instance)):
        if var.exported:
            value = getattr(instance, field.name)
            out[var.env] = var.write(value) if var.write is not None else write_value(value)
    return out


def check_range(var: Var, value: Any) -> None:
    """ConfigError when a number lies outside the declared bounds."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if var.minimum is not None and value < var.minimum:
        raise ConfigError(f"{var.env}={value} is below the minimum {var.minimum}")
    if var.maximum is not None and value > var.maximum:
        raise ConfigError(f"{var.env}={value} is above the maximum {var.maximum}")


# ---- parsing and writing by type ---------------------------------------------------


def parse_int(raw: str) -> int:
    """An integer."""
    try:
        return int(raw)
    except ValueError:
        raise Invalid("is not an integer") from None


def parse_float(raw: str) -> float:
    """A number."""
    try:
        return float(raw)
    except ValueError:
        raise Invalid("is not a number") from None


def parse_bool(raw: str) -> bool:
    """1/0, true/false, yes/no, on/off (any case)."""
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise Invalid("is not a boolean (use true or false)")


def parse_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list (empty items dropped)."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_BY_TYPE: dict[Any, Callable[[str], Any]] = {
    int: parse_int, float: parse_float, bool: parse_bool, str: str,
    Path: lambda raw: Path(raw).expanduser(), tuple[str, ...]: parse_list,
}


def parser_for(hint: Any) -> Callable[[str], Any]:
    """The parser of a field type (``X | None`` parses as X: empty already means None)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            hint = args[0]
    try:
        return _BY_TYPE[hint]
    except KeyError:
        raise TypeError(f"no parser for settings of type {hint!r}; give parse=") from None


def write_value(value: Any) -> str:
    """The environment text of a value (the inverse of the parsers above)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, frozenset | set):
        return ",".join(str(v) for v in sorted(value))
    return str(value)
