"""Every setting of every settings class: read, refused with a message naming the
variable, written back, and listed in docs/configuration.md."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from config.env import ConfigError, Var, dump, load, parser_for, variables, write_value
from config.reference import SETTINGS_CLASSES, document
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

#: A valid, non-default text for the settings whose parser is their own.
CUSTOM_VALID = {
    "FACEFLEET_AWS_ENDPOINT": "http://127.0.0.1:9999",
    "FACEFLEET_FLEET_STATE_KEY": "elsewhere/state.json",
    "FACEFLEET_WORKER_POOL": "threads",
    "FACEFLEET_WEB_BIND": "0.0.0.0:9000",
    "FACEFLEET_MONITOR_QUEUE_PREFIX": "mon_1-",
    "FACEFLEET_ROLE": "batch-tier",
    "FACEFLEET_WORKER_COMMAND": "celery -A tasks worker -n {name}@%h -Q {queue}",
    "FACEFLEET_WORKER_CPUS": "0",
    "FACEFLEET_SERVICE_CPUS": "0",
    "FACEFLEET_WARM_POOL": "3",
    "FACEFLEET_IMDS_ENDPOINT": "http://127.0.0.1:9",
    "FACEFLEET_DEVICE": "cpu",
    "FACEFLEET_AUTOSCALER_PROFILE": "aws",
    "FACEFLEET_DASHBOARD_GUARD": "key",
    "FACEFLEET_ADMIT_WAIT": "45",  # below FACEFLEET_MAX_WAIT, its default
    "FACEFLEET_DETECT_MAX_SIDE": "1280",
}
#: Texts each custom parser must refuse, and a word its message must hold.
CUSTOM_INVALID = {
    "FACEFLEET_AWS_ENDPOINT": ("localhost:5055", "http(s) URL"),
    "FACEFLEET_FLEET_STATE_KEY": ("///", "object key"),
    "FACEFLEET_WORKER_POOL": ("gevent", "prefork, solo or threads"),
    "FACEFLEET_WEB_BIND": ("8000", "HOST:PORT"),
    "FACEFLEET_MONITOR_QUEUE_PREFIX": ("bad prefix!", "letters, digits"),
    "FACEFLEET_ROLE": ("r" * 201, "200 characters"),
    "FACEFLEET_WORKER_COMMAND": ("celery {oops}", "command line"),
    "FACEFLEET_WORKER_CPUS": ("a", "CPU list"),
    "FACEFLEET_SERVICE_CPUS": ("4096", "does not offer"),
    "FACEFLEET_IMDS_ENDPOINT": ("169.254.169.254", "http(s) URL"),
    "FACEFLEET_DEVICE": ("tpu", "auto, cpu or cuda"),
    "FACEFLEET_AUTOSCALER_PROFILE": ("gcp", "embedded or aws"),
    "FACEFLEET_DASHBOARD_GUARD": ("open", "auto, key or off"),
}


def all_settings() -> list[tuple[type, dataclasses.Field[Any], Var]]:
    return [(cls, f, v) for cls in SETTINGS_CLASSES for f, v in variables(cls)]


def ids(case: tuple[type, dataclasses.Field[Any], Var]) -> str:
    return f"{case[0].__name__}.{case[1].name}"


def base_type(cls: type, name: str) -> Any:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) \
        and len(args) == 1 else hint


def valid_text(cls: type, field: dataclasses.Field[Any], var: Var) -> str:
    """A valid text for ``var`` that differs from its default."""
    if var.env in CUSTOM_VALID:
        return CUSTOM_VALID[var.env]
    kind = base_type(cls, field.name)
    default = field.default
    if kind is bool:
        return write_value(not default)
    if kind in (int, float):
        # One step from the default, inside the bounds (so cross-field checks hold).
        start = default if default is not None else (var.minimum or 0)
        step = 1 if kind is int else 0.5
        value = start + step
        if var.maximum is not None and value > var.maximum:
            value = start - step
        return write_value(kind(value))
    if kind is tuple[str, ...]:
        return "a,b"
    if kind is Path:
        return "/tmp/facefleet-test-path"
    return "some-value"


@pytest.mark.parametrize("case", all_settings(), ids=ids)
def test_every_setting_is_declared_with_a_variable_and_a_doc(
        case: tuple[type, dataclasses.Field[Any], Var]) -> None:
    cls, field, var = case
    assert var.env.startswith(("FACEFLEET_", "AWS_")), var.env
    assert var.doc and var.doc == var.doc.strip()
    if var.parse is None:
        parser_for(typing.get_type_hints(cls)[field.name])  # a type the reader knows


@pytest.mark.parametrize("case", all_settings(), ids=ids)
def test_every_setting_is_read(case: tuple[type, dataclasses.Field[Any], Var],
                               tmp_path: Path) -> None:
    cls, field, var = case
    text = valid_text(cls, field, var)
    if var.env == "FACEFLEET_USER_DATA":
        (tmp_path / "ud").write_text("#cloud-config\n")
        text = str(tmp_path / "ud")
    value = getattr(load(cls, {var.env: text}), field.name)
    # (A field reading another class's variable, like the autoscaler's profile from the
    # endpoint, is tested with its class.)
    assert value != field.default or var.derive is not None or not var.exported
    assert load(cls, {var.env: ""}) == load(cls, {}), "empty means unset"


@pytest.mark.parametrize("case", all_settings(), ids=ids)
def test_every_setting_refuses_bad_values_naming_the_variable(
        case: tuple[type, dataclasses.Field[Any], Var]) -> None:
    cls, field, var = case
    kind = base_type(cls, field.name)
    bad: list[tuple[str, str]] = []
    if var.env in CUSTOM_INVALID:
        bad.append(CUSTOM_INVALID[var.env])
    elif var.parse is None and kind is int:
        bad.append(("1.5x", "not an integer"))
    elif var.parse is None and kind is float:
        bad.append(("fast", "not a number"))
    elif kind is bool:
        bad.append(("maybe", "not a boolean"))
    if var.minimum is not None:
        bad.append((write_value(kind(var.minimum - 1)), "below the minimum"))
    if var.maximum is not None:
        bad.append((write_value(kind(var.maximum + 1)), "above the maximum"))
    if not bad:
        assert kind in (str, tuple[str, ...], Path), f"{var.env}: no refusal tested"
        return
    for text, words in bad:
        with pytest.raises(ConfigError) as info:
            load(cls, {var.env: text})
        assert var.env in str(info.value) and words in str(info.value), (text, info.value)


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_settings_round_trip_through_the_environment(cls: type, tmp_path: Path) -> None:
    """dump() writes every exported setting so that a child process reads the same."""
    env = {}
    for field, var in variables(cls):
        if var.exported and var.env not in ("FACEFLEET_USER_DATA",):
            env[var.env] = valid_text(cls, field, var)
    env.pop("FACEFLEET_WARM_POOL", None)  # derived from max: keep them consistent
    if cls.__name__ == "AutoscalerSettings":
        env["FACEFLEET_MIN_INSTANCES"] = "0"
    changed = load(cls, env)
    written = dump(changed)
    assert set(written) == {v.env for _, v in variables(cls) if v.exported}
    assert load(cls, written) == changed


def test_settings_round_trip_keeps_none_and_aws() -> None:
    aws = Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "aws", "FACEFLEET_THRESHOLD": "0.9"})
    assert aws.aws_endpoint is None and not aws.embedded
    assert Settings.from_env(aws.to_env()) == aws
    plain = Settings.from_env({})
    assert plain.threshold is None and plain.api_key is None
    assert Settings.from_env(plain.to_env()) == plain


def test_the_configuration_reference_is_up_to_date() -> None:
    """docs/configuration.md is what ``python -m config`` prints (regenerate it with
    ``python -m config > docs/configuration.md``)."""
    assert (ROOT / "docs" / "configuration.md").read_text() == document()
