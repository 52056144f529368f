"""What spans several settings, and the parsers with rules of their own."""

from __future__ import annotations

import os

import pytest

from config.dashboard import DashboardSettings
from config.env import ConfigError
from config.monitoring import MonitoringSettings
from config.serving import ServingSettings
from config.settings import Settings
from config.stack import StackSettings
from config.web import WebSettings


def test_endpoint_url_or_aws() -> None:
    assert Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "http://h:1/"}).aws_endpoint == "http://h:1"
    assert Settings.from_env({"FACEFLEET_AWS_ENDPOINT": "AWS"}).aws_endpoint is None
    assert Settings.from_env({}).gallery == "s3://facefleet-models/gallery.json"
    assert Settings.from_env({"FACEFLEET_MODEL_BUCKET": "m"}).gallery == "s3://m/gallery.json"
    assert Settings.from_env({"FACEFLEET_FLEET_STATE_KEY": "/a/b.json"}).fleet_state_key == \
        "a/b.json"


def test_cpu_lists_parse_like_taskset() -> None:
    available = sorted(os.sched_getaffinity(0))
    first = available[0]
    assert StackSettings.from_env({}).worker_cpus is None
    assert StackSettings.from_env({"FACEFLEET_WORKER_CPUS": str(first)}).worker_cpus == {first}
    span = f"{available[0]}-{available[-1]}"
    assert StackSettings.from_env({"FACEFLEET_SERVICE_CPUS": span}).service_cpus == \
        set(available)
    for bad in ("a", "3-1", "-1", "1,,2"):
        with pytest.raises(ConfigError, match="FACEFLEET_WORKER_CPUS="):
            StackSettings.from_env({"FACEFLEET_WORKER_CPUS": bad})
    with pytest.raises(ConfigError, match="does not offer"):
        StackSettings.from_env({"FACEFLEET_WORKER_CPUS": str(max(available) + 1)})


def test_visibility_is_extended_in_time() -> None:
    # Extended every 10 s by default: a 30 s timeout is fine under a 60 s task limit.
    assert ServingSettings.from_env({}).visibility_timeout == 30
    with pytest.raises(ConfigError, match="FACEFLEET_VISIBILITY_EXTEND_EVERY=11 must be"):
        ServingSettings.from_env({"FACEFLEET_VISIBILITY_TIMEOUT": "21",
                                  "FACEFLEET_VISIBILITY_EXTEND_EVERY": "11"})
    off = {"FACEFLEET_VISIBILITY_EXTEND_EVERY": "0"}
    with pytest.raises(ConfigError, match="FACEFLEET_VISIBILITY_TIMEOUT=60 must exceed"):
        ServingSettings.from_env({**off, "FACEFLEET_VISIBILITY_TIMEOUT": "60"})
    assert ServingSettings.from_env({**off, "FACEFLEET_VISIBILITY_TIMEOUT": "61"}) \
        .visibility_timeout == 61


def test_waiting_requests_follow_the_threads() -> None:
    assert WebSettings.from_env({"FACEFLEET_WEB_THREADS": "40"}).max_waiting == 24
    assert WebSettings.from_env({"FACEFLEET_WEB_THREADS": "8"}).max_waiting == 1
    with pytest.raises(ConfigError, match="FACEFLEET_WEB_MAX_WAITING=50 is above"):
        WebSettings.from_env({"FACEFLEET_WEB_THREADS": "40", "FACEFLEET_WEB_MAX_WAITING": "50"})


def test_dashboard_idle_stop_outlasts_two_polls() -> None:
    with pytest.raises(ConfigError, match="FACEFLEET_DASHBOARD_IDLE_STOP"):
        DashboardSettings.from_env({"FACEFLEET_DASHBOARD_IDLE_STOP": "1",
                                    "FACEFLEET_DASHBOARD_POLL": "1"})
    assert DashboardSettings.from_env({"FACEFLEET_DASHBOARD_IDLE_STOP": "0"}).idle_stop_s == 0


def test_listeners_refresh_twice_before_they_expire() -> None:
    with pytest.raises(ConfigError, match="FACEFLEET_LISTENER_REFRESH"):
        MonitoringSettings.from_env({"FACEFLEET_LISTENER_REFRESH": "400"})
