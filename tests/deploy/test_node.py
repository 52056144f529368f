"""deploy.node against a stand-in instance metadata service on loopback (IMDSv2)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.embedded_aws import free_port
from deploy.node import InstanceMetadata, instance_name, spot_notice, watch_spot
from tests.deploy.imds import serve_imds


@pytest.fixture
def imds() -> Iterator[tuple[str, dict[str, str]]]:
    paths: dict[str, str] = {}
    with serve_imds(paths) as url:
        yield url, paths


def test_the_worker_is_named_after_the_instance_name_tag(
        imds: tuple[str, dict[str, str]]) -> None:
    url, paths = imds
    assert instance_name(InstanceMetadata(url), "host-1") == "host-1"  # no tag published
    paths["/latest/meta-data/tags/instance/Name"] = "app-tier-instance-3"
    assert instance_name(InstanceMetadata(url), "host-1") == "app-tier-instance-3"
    closed = f"http://127.0.0.1:{free_port()}"
    assert instance_name(InstanceMetadata(closed, timeout=0.5), "host-1") == "host-1"


def test_spot_watch_runs_its_command_on_the_notice(imds: tuple[str, dict[str, str]],
                                                  tmp_path: Path) -> None:
    url, paths = imds
    metadata = InstanceMetadata(url)
    assert spot_notice(metadata) is None
    marker = tmp_path / "stopped"
    looks: list[float] = []

    def sleep(seconds: float) -> None:  # the notice comes on the third look
        looks.append(seconds)
        if len(looks) == 2:
            paths["/latest/meta-data/spot/instance-action"] = json.dumps(
                {"action": "terminate", "time": "2026-12-01T17:00:00Z"})

    then = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('drained')"]
    assert watch_spot(metadata, then, poll_s=0.1, sleep=sleep) == 0
    assert marker.read_text() == "drained" and looks == [0.1, 0.1]
    assert spot_notice(metadata) == {"action": "terminate", "time": "2026-12-01T17:00:00Z"}
