"""AutoscalerSettings: defaults per profile, validation with errors naming the variable."""

from __future__ import annotations

import pytest

from config.autoscaler import DEFAULT_WORKER_COMMAND, AutoscalerSettings
from config.env import ConfigError


def test_embedded_defaults() -> None:
    s = AutoscalerSettings.from_env({})
    assert s.embedded and s.max_instances == 15 and s.min_instances == 0
    assert s.tick_s == 0.5 and s.idle_grace_s == 0.5 and s.min_run_s == 0.0
    assert s.backlog_per_instance == 1.0
    assert s.warm_pool_size == 15 and s.worker_command == DEFAULT_WORKER_COMMAND
    assert s.instance_name(3) == "app-tier-instance-3"


def test_aws_profile_needs_an_image_and_has_slower_defaults() -> None:
    with pytest.raises(ConfigError, match="FACEFLEET_LAUNCH_TEMPLATE"):
        AutoscalerSettings.from_env({"FACEFLEET_AWS_ENDPOINT": "aws"}).check_launchable()
    s = AutoscalerSettings.from_env({"FACEFLEET_AWS_ENDPOINT": "aws", "FACEFLEET_AMI": "ami-1"})
    assert not s.embedded and s.tick_s == 5.0 and s.min_run_s == 60.0
    assert s.backlog_per_instance == 3.0 and s.idle_grace_s == 30.0


def test_the_aws_profile_can_run_against_the_embedded_endpoint() -> None:
    s = AutoscalerSettings.from_env({"FACEFLEET_AUTOSCALER_PROFILE": "aws"})
    assert s.local_endpoint and not s.embedded and s.tick_s == 5.0
    assert not AutoscalerSettings.from_env({"FACEFLEET_AWS_ENDPOINT": "aws"}).embedded


def test_overrides_and_warm_pool_follows_max() -> None:
    s = AutoscalerSettings.from_env({"FACEFLEET_MAX_INSTANCES": "4",
                                     "FACEFLEET_SECURITY_GROUPS": "sg-1, sg-2",
                                     "FACEFLEET_TICK_SECONDS": "2"})
    assert s.max_instances == 4 and s.warm_pool_size == 4 and s.tick_s == 2.0
    assert s.security_group_ids == ("sg-1", "sg-2")


def test_worker_argv_substitutes_name_and_queue() -> None:
    s = AutoscalerSettings.from_env({})
    argv = s.worker_argv("app-tier-instance-2", "q1")
    assert argv[:3] == ["celery", "-A", "tasks"]
    assert "app-tier-instance-2@%h" in argv and "q1" in argv


def test_batching_turns_the_default_solo_worker_into_a_threads_pool() -> None:
    s = AutoscalerSettings.from_env({})
    assert s.worker_argv("i-1", "q", batch_threads=16)[4:8] == ["-P", "threads", "-c", "16"]
    assert "solo" in s.worker_argv("i-1", "q")
    own = AutoscalerSettings.from_env({"FACEFLEET_WORKER_COMMAND":
                                       "celery -A tasks worker -P solo -n {name}@%h"})
    assert own.worker_argv("i-1", "q", batch_threads=16)[4:6] == ["-P", "solo"]  # as written


@pytest.mark.parametrize(("env", "match"), [
    ({"FACEFLEET_MAX_INSTANCES": "0"}, "FACEFLEET_MAX_INSTANCES"),
    ({"FACEFLEET_MAX_INSTANCES": "x"}, "FACEFLEET_MAX_INSTANCES"),
    ({"FACEFLEET_MIN_INSTANCES": "5", "FACEFLEET_MAX_INSTANCES": "3"}, "MIN_INSTANCES"),
    ({"FACEFLEET_TICK_SECONDS": "0"}, "FACEFLEET_TICK_SECONDS"),
    ({"FACEFLEET_BACKLOG_PER_INSTANCE": "0"}, "FACEFLEET_BACKLOG_PER_INSTANCE"),
    ({"FACEFLEET_WARM_POOL": "16"}, "FACEFLEET_WARM_POOL"),
    ({"FACEFLEET_IDLE_GRACE_SECONDS": "-1"}, "FACEFLEET_IDLE_GRACE_SECONDS"),
    ({"FACEFLEET_WORKER_COMMAND": "celery {oops}"}, "FACEFLEET_WORKER_COMMAND"),
    ({"FACEFLEET_WORKER_COMMAND": "celery 'unclosed"}, "FACEFLEET_WORKER_COMMAND"),
    ({"FACEFLEET_USER_DATA": "/nonexistent/user-data"}, "FACEFLEET_USER_DATA"),
    ({"FACEFLEET_RUNNER_FORK": "maybe"}, "FACEFLEET_RUNNER_FORK"),
])
def test_bad_values_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AutoscalerSettings.from_env(env)
