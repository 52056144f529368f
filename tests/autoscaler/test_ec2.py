"""The EC2 fleet back end against moto's server over HTTP."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from typing import Any

import pytest

from autoscaler.ec2 import Ec2Fleet
from autoscaler.errors import FleetError
from autoscaler.loop import Controller
from autoscaler.state import StatePublisher, read_state
from config import aws
from config.autoscaler import ROLE_TAG, AutoscalerSettings
from config.aws import QueueDepth


@pytest.fixture
def ec2(settings: Any) -> Any:
    return aws.client(settings, "ec2")


@pytest.fixture
def scaler() -> AutoscalerSettings:
    """Settings with a role unique to the test (moto's EC2 is shared by the session)."""
    return AutoscalerSettings(role=f"test-{uuid.uuid4().hex[:8]}", max_instances=5,
                              warm_pool_size=5)


def tags(ec2: Any, instance_id: str) -> dict[str, str]:
    raw = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in raw["Tags"]}


def live(ec2: Any, role: str) -> list[dict[str, Any]]:
    pages = ec2.describe_instances(Filters=[
        {"Name": f"tag:{ROLE_TAG}", "Values": [role]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def test_launch_tags_lowest_free_slots_and_caps_at_max(ec2: Any, scaler) -> None:
    fleet = Ec2Fleet(ec2, scaler)
    made = fleet.launch(3)
    assert [i.name for i in made] == [f"app-tier-instance-{n}" for n in (1, 2, 3)]
    t = tags(ec2, made[1].id)
    assert t["Name"] == "app-tier-instance-2" and t[ROLE_TAG] == scaler.role
    assert t["facefleet:slot"] == "2"
    fleet.terminate([made[1].id])
    assert [i.slot for i in fleet.launch(10)] == [2, 4, 5]  # slot 2 reused, then up to max
    assert fleet.launch(1) == []
    assert len(live(ec2, scaler.role)) == 5
    assert {i.slot for i in fleet.list()} == {1, 2, 3, 4, 5}


def test_reused_slot_gets_a_new_client_token(ec2: Any, scaler) -> None:
    fleet = Ec2Fleet(ec2, scaler)
    first = fleet.launch(1)[0]
    fleet.terminate([first.id])
    second = fleet.launch(1)[0]
    assert second.id != first.id and second.slot == 1
    assert tags(ec2, second.id)["facefleet:generation"] == "2"


def test_start_stop_terminate(ec2: Any, scaler) -> None:
    fleet = Ec2Fleet(ec2, scaler)
    a, b = fleet.launch(2)
    fleet.stop([a.id])
    states = {i.id: i.state for i in fleet.list()}
    assert states == {a.id: "stopped", b.id: "running"}
    fleet.start([a.id])
    listed = {i.id: i for i in fleet.list()}
    assert listed[a.id].state == "running" and listed[a.id].origin == "start"
    fleet.terminate([a.id, b.id])
    assert fleet.list() == []
    with pytest.raises(FleetError, match="cannot stop"):
        fleet.stop(["i-0123456789abcdef0"])


def test_other_roles_are_invisible(ec2: Any, scaler) -> None:
    mine = Ec2Fleet(ec2, scaler)
    other = Ec2Fleet(ec2, replace(scaler, role=scaler.role + "-other"))
    mine.launch(2)
    other.launch(1)
    assert len(mine.list()) == 2 and len(other.list()) == 1


def test_uses_a_launch_template(ec2: Any, scaler) -> None:
    image = Ec2Fleet(ec2, scaler).image_id()
    name = f"facefleet-test-{uuid.uuid4().hex[:6]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": image, "InstanceType": "t3.micro"})
    fleet = Ec2Fleet(ec2, replace(scaler, launch_template=name))
    inst = fleet.launch(1)[0]
    raw = ec2.describe_instances(InstanceIds=[inst.id])["Reservations"][0]["Instances"][0]
    assert raw["InstanceType"] == "t3.micro" and raw["ImageId"] == image
    assert tags(ec2, inst.id)["Name"] == "app-tier-instance-1"


def test_concurrent_launches_never_leave_more_than_max(ec2: Any, scaler) -> None:
    """Eight controllers (separate fleet objects) race to fill 5 slots; moto ignores
    ClientToken, so duplicates may appear for an instant and are reconciled."""
    fleets = [Ec2Fleet(ec2, scaler) for _ in range(8)]
    barrier = threading.Barrier(len(fleets))
    errors: list[BaseException] = []

    def go(f: Ec2Fleet) -> None:
        try:
            barrier.wait()
            f.launch(5)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=go, args=(f,)) for f in fleets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    fleets[0].dedupe()
    running = live(ec2, scaler.role)
    assert len(running) == 5
    assert sorted(tags(ec2, i["InstanceId"])["facefleet:slot"] for i in running) == list("12345")


def test_client_token_is_stable_per_slot_and_generation(ec2: Any, scaler) -> None:
    fleet = Ec2Fleet(ec2, scaler)
    assert fleet.client_token(3, 1) == Ec2Fleet(ec2, scaler).client_token(3, 1)
    assert fleet.client_token(3, 1) != fleet.client_token(3, 2)
    assert len(fleet.client_token(999, 999)) <= 64


def test_controller_on_moto_publishes_state(settings: Any, ec2: Any, scaler) -> None:
    s3 = aws.client(settings, "s3")
    s3.create_bucket(Bucket=settings.output_bucket)
    load = {"now": QueueDepth(7, 0)}
    ctl = Controller(scaler, Ec2Fleet(ec2, scaler), lambda: load["now"],
                     StatePublisher(s3, settings.output_bucket, settings.fleet_state_key))
    ctl.tick()
    state = read_state(s3, settings.output_bucket, settings.fleet_state_key)
    assert state is not None and state["desired"] == 5 and state["counts"]["running"] == 5
    assert [i["name"] for i in state["instances"]] == [
        f"app-tier-instance-{n}" for n in range(1, 6)]
    # a restarted controller sees the same fleet and launches nothing more
    again = Controller(scaler, Ec2Fleet(ec2, scaler), lambda: load["now"])
    again.tick()
    assert len(live(ec2, scaler.role)) == 5
    assert read_state(s3, settings.output_bucket, "absent.json") is None
