"""Provisioning against moto's server over HTTP: idempotent, redrive policy, gallery."""

from __future__ import annotations

import json

from config import aws
from config.serving import ServingSettings
from config.settings import Settings
from deploy.provision import provision
from tasks.completion import CREATED_TAG, HEARTBEAT_TAG, ROLE_TAG


def test_provision_twice_gives_the_same_resources(settings: Settings) -> None:
    first = provision(settings, ServingSettings(), upload_weights=False)
    second = provision(settings, ServingSettings(), upload_weights=False)
    assert first.created, "the first run creates buckets and queues"
    assert second.created == []
    assert (first.queue_url, first.dead_letter_queue_url) == (
        second.queue_url, second.dead_letter_queue_url)
    s3 = aws.client(settings, "s3")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {settings.input_bucket, settings.output_bucket, settings.model_bucket} <= names
    versioning = s3.get_bucket_versioning(Bucket=settings.model_bucket)
    assert versioning["Status"] == "Enabled"
    gallery_bucket, _, gallery_key = settings.gallery[5:].partition("/")
    versions = s3.list_object_versions(Bucket=gallery_bucket, Prefix=gallery_key)["Versions"]
    assert len(versions) == 1, "the empty gallery is written once, never overwritten"


def test_request_queue_has_the_redrive_policy(settings: Settings) -> None:
    serving = ServingSettings(visibility_timeout=90, task_time_limit=30)
    result = provision(settings, serving, upload_weights=False)
    sqs = aws.client(settings, "sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=result.queue_url,
                                     AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=result.dead_letter_queue_url,
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.loads(attrs["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_arn
    assert int(policy["maxReceiveCount"]) == settings.max_receives
    assert attrs["VisibilityTimeout"] == "90"


def test_provision_reconciles_a_changed_queue(settings: Settings) -> None:
    result = provision(settings, ServingSettings(), upload_weights=False)
    sqs = aws.client(settings, "sqs")
    sqs.set_queue_attributes(QueueUrl=result.queue_url, Attributes={"VisibilityTimeout": "5"})
    provision(settings, ServingSettings(), upload_weights=False)
    attrs = sqs.get_queue_attributes(QueueUrl=result.queue_url,
                                     AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert attrs["VisibilityTimeout"] == str(ServingSettings().visibility_timeout)


def test_provision_removes_stale_reply_queues_only(settings: Settings) -> None:
    sqs = aws.client(settings, "sqs")
    prefix = f"reply-{settings.queue}-"
    serving = ServingSettings(reply_queue_prefix=prefix, reply_queue_ttl=600)
    stale = sqs.create_queue(QueueName=prefix + "dead", tags={
        ROLE_TAG: "reply", CREATED_TAG: "1000", HEARTBEAT_TAG: "1000"})["QueueUrl"]
    live = sqs.create_queue(QueueName=prefix + "live", tags={
        ROLE_TAG: "reply", CREATED_TAG: "1000", HEARTBEAT_TAG: "99999999999"})["QueueUrl"]
    provision(settings, serving, upload_weights=False)
    urls = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert stale not in urls
    assert live in urls
