"""Expiry sweeps, event batching (on moto's server) and the pure naming/settings rules."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from config.env import ConfigError
from config.monitoring import MonitoringSettings, apply
from tasks.transport.batching import FanoutBatcher
from tasks.transport.naming import (
    KIND_LISTENER,
    MAX_QUEUE_NAME,
    is_monitor_queue,
    is_reply_queue,
    physical_name,
    topic_matches,
)
from tasks.transport.registry import TAG_LAST_SEEN, Keeper, KeeperOptions, monitor_tags
from tests.tasks.transport.conftest import Fleet, make_fleet


def subscribe(fleet: Fleet, topic_arn: str, name: str, tags: dict[str, str]) -> str:
    sqs, sns = fleet.client("sqs"), fleet.client("sns")
    url = sqs.create_queue(QueueName=name, tags=tags)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"],
                  Attributes={"RawMessageDelivery": "true"})
    return url


def test_sweep_removes_expired_and_dangling_keeps_live(moto_endpoint: str, tmp_path: Path) -> None:
    fleet = make_fleet(moto_endpoint, tmp_path)
    sns = fleet.client("sns")
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:6]}")["TopicArn"]
    dead = physical_name(fleet.prefix, KIND_LISTENER, "dead.celery.pidbox")
    live = physical_name(fleet.prefix, KIND_LISTENER, "live.celery.pidbox")
    gone = physical_name(fleet.prefix, KIND_LISTENER, "gone")
    subscribe(fleet, topic, dead, monitor_tags(KIND_LISTENER, now=time.time() - 3600))
    subscribe(fleet, topic, live, monitor_tags(KIND_LISTENER))
    fleet.client("sqs").delete_queue(QueueUrl=subscribe(fleet, topic, gone, {}))

    keeper = Keeper(fleet.client("sqs"), sns, KeeperOptions(prefix=fleet.prefix, expires=600))
    keeper.record_topic(topic)
    assert keeper.sweep() == [dead]
    assert fleet.monitor_queues() == [live]
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Endpoint"].rsplit(":", 1)[-1] for s in subs] == [live]


def test_refresh_stamps_last_seen(moto_endpoint: str, tmp_path: Path) -> None:
    fleet = make_fleet(moto_endpoint, tmp_path)
    sqs = fleet.client("sqs")
    keeper = Keeper(sqs, fleet.client("sns"), KeeperOptions(prefix=fleet.prefix),
                    clock=lambda: 2_000_000_000.0)
    name = keeper.listener("x.celery.pidbox", owner=1)
    url = sqs.create_queue(QueueName=name, tags=monitor_tags(KIND_LISTENER, now=1))["QueueUrl"]
    keeper.record_url(name, url)
    assert keeper.refresh() == 1
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"][TAG_LAST_SEEN] == "2000000000"
    keeper.close_owner(1)
    assert fleet.monitor_queues() == []


def test_batcher_sends_every_event_in_few_requests(moto_endpoint: str, tmp_path: Path) -> None:
    fleet = make_fleet(moto_endpoint, tmp_path)
    sqs, sns = fleet.client("sqs"), fleet.client("sns")
    topic = sns.create_topic(Name=f"ev-{uuid.uuid4().hex[:6]}")["TopicArn"]
    url = subscribe(fleet, topic, f"{fleet.prefix}sink", {})
    batcher = FanoutBatcher(sns, interval=5.0)
    for i in range(25):
        batcher.add(topic, json.dumps({"n": i}))
    batcher.close()  # 2 full batches went at once; close sends the last 5
    assert (batcher.sent_requests, batcher.sent_messages) == (3, 25)
    seen: set[int] = set()
    for _ in range(10):
        for msg in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            seen.add(json.loads(msg["Body"])["n"])
        if len(seen) == 25:
            break
    assert seen == set(range(25))


def test_batcher_sends_a_lone_event_after_the_interval(moto_endpoint: str, tmp_path: Path) -> None:
    fleet = make_fleet(moto_endpoint, tmp_path)
    sns = fleet.client("sns")
    topic = sns.create_topic(Name=f"ev-{uuid.uuid4().hex[:6]}")["TopicArn"]
    batcher = FanoutBatcher(sns, interval=0.2)
    try:
        batcher.add(topic, "{}")
        deadline = time.monotonic() + 5
        while batcher.sent_messages == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert batcher.sent_messages == 1
    finally:
        batcher.close()


def test_physical_names_are_legal_unique_and_recognisable() -> None:
    long_name = "celery@" + "h" * 200 + ".celery.pidbox"
    first = physical_name("ffmon-", KIND_LISTENER, long_name)
    second = physical_name("ffmon-", KIND_LISTENER, long_name)
    assert first != second
    assert len(first) <= MAX_QUEUE_NAME
    assert all(c.isalnum() or c in "-_" for c in first)
    assert is_monitor_queue(first, "ffmon-")
    assert not is_monitor_queue("facefleet-requests", "ffmon-")
    with pytest.raises(ValueError, match="too long"):
        physical_name("p" * 80, KIND_LISTENER, "x")


def test_reply_queue_pattern() -> None:
    oid = str(uuid.uuid4())
    assert is_reply_queue(f"{oid}.reply.celery.pidbox")
    assert not is_reply_queue("w1@host.celery.pidbox")
    assert not is_reply_queue(f"celeryev.{oid}")


@pytest.mark.parametrize(("keys", "routing_key", "expected"), [
    (["#"], "task.succeeded", True),
    (["task.#"], "task.succeeded", True),
    (["task.#"], "task.multi", True),
    (["task.#"], "worker.heartbeat", False),
    (["worker.*"], "worker.heartbeat", True),
    (["worker.*"], "worker.a.b", False),
    (["task.#", "worker.heartbeat"], "worker.heartbeat", True),
])
def test_topic_binding_keys(keys: list[str], routing_key: str, expected: bool) -> None:
    assert topic_matches(keys, routing_key) is expected


def test_settings_defaults_and_merge() -> None:
    settings = MonitoringSettings.from_env({})
    conf = apply({"broker_transport_options": {"region": "eu-west-1"}}, settings)
    assert conf["broker_transport"] == "tasks.transport:Transport"
    assert conf["worker_enable_remote_control"] is True
    assert conf["broker_transport_options"]["region"] == "eu-west-1"
    assert conf["broker_transport_options"]["supports_fanout"] is True
    assert conf["broker_transport_options"]["event_flush_interval"] == 0.5


@pytest.mark.parametrize(("env", "message"), [
    ({"FACEFLEET_MONITOR_QUEUE_PREFIX": "bad prefix!"}, "FACEFLEET_MONITOR_QUEUE_PREFIX"),
    ({"FACEFLEET_LISTENER_REFRESH": "400"}, "at most half"),
    ({"FACEFLEET_LISTENER_RETENTION": "10"}, "FACEFLEET_LISTENER_RETENTION"),
    ({"FACEFLEET_EVENT_FLUSH_INTERVAL": "soon"}, "not a number"),
])
def test_settings_refuse_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MonitoringSettings.from_env(env)
