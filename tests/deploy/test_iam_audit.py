"""deploy.iam_audit: HTTP requests to AWS calls (IAM action, resource), and the audit."""

from __future__ import annotations

import json

from deploy.iam_audit import Call, audit, describe_request, granted_actions

AUTH = ("AWS4-HMAC-SHA256 Credential=web/20261201/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=abc")


def auth(service: str) -> dict[str, str]:
    return {"Authorization": AUTH.format(service=service)}


def test_s3_requests_map_to_iam_actions() -> None:
    assert describe_request("GET", "/in/abc/face.jpg", auth("s3"), b"") == Call(
        "web", "s3:GetObject", "arn:aws:s3:::in/abc/face.jpg")
    assert describe_request("HEAD", "/models/gallery.json", auth("s3"), b"").action == \
        "s3:GetObject"
    assert describe_request("PUT", "/out/results/x", auth("s3"), b"data").action == \
        "s3:PutObject"
    listing = describe_request("GET", "/in?list-type=2&prefix=abc%2F", auth("s3"), b"")
    assert listing == Call("web", "s3:ListBucket", "arn:aws:s3:::in")
    assert describe_request("PUT", "/models?versioning", auth("s3"), b"").action == \
        "s3:PutBucketVersioning"


def test_sqs_json_and_query_protocols() -> None:
    url = "http://127.0.0.1:5055/123456789012/requests"
    json_call = describe_request(
        "POST", "/", {**auth("sqs"), "X-Amz-Target": "AmazonSQS.ReceiveMessage"},
        json.dumps({"QueueUrl": url}).encode())
    assert json_call == Call("web", "sqs:ReceiveMessage",
                             "arn:aws:sqs:us-east-1:123456789012:requests")
    query_call = describe_request("POST", "/123456789012/requests", auth("sqs"),
                                  b"Action=DeleteMessage&ReceiptHandle=r")
    assert query_call == Call("web", "sqs:DeleteMessage",
                              "arn:aws:sqs:us-east-1:123456789012:requests")
    created = describe_request("POST", "/", {**auth("sqs"),
                                             "X-Amz-Target": "AmazonSQS.CreateQueue"},
                               b'{"QueueName": "facefleet-reply-x"}')
    assert created.resource.endswith(":facefleet-reply-x")
    listed = describe_request("POST", "/", {**auth("sqs"),
                                            "X-Amz-Target": "AmazonSQS.ListQueues"}, b"{}")
    assert listed == Call("web", "sqs:ListQueues", "*")


def test_sns_and_ec2_and_unsigned() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:celeryev"
    assert describe_request("POST", "/", auth("sns"),  # IAM knows a batch as one Publish
                            f"Action=PublishBatch&TopicArn={topic}".encode()) == Call(
        "web", "sns:Publish", topic)
    assert describe_request("POST", "/", auth("sns"),
                            f"Action=Unsubscribe&SubscriptionArn={topic}:sub-1".encode()
                            ).resource == topic
    assert describe_request("POST", "/", auth("ec2"), b"Action=DescribeInstances") == Call(
        "web", "ec2:DescribeInstances", "*")
    assert describe_request("GET", "/moto-api/", {}, b"") is None


POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
     "Resource": "arn:aws:s3:::in/*"},
    {"Effect": "Allow", "Action": "sqs:SendMessage",
     "Resource": "arn:aws:sqs:*:*:requests"},
    {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*",
     "Condition": {"StringEquals": {"aws:RequestTag/facefleet:role": "app-tier"}}},
]}


def test_audit_finds_refused_calls_and_unused_grants() -> None:
    calls = [Call("k-web", "s3:GetObject", "arn:aws:s3:::in/a.jpg"),
             Call("k-web", "s3:GetObject", "arn:aws:s3:::out/a.jpg"),  # other bucket
             Call("k-web", "ec2:RunInstances", "*"),  # allowed (conditions not evaluated)
             Call("k-other", "sqs:DeleteQueue", "*")]  # not a role we audit
    result = audit(calls, {"web": json.dumps(POLICY)}, {"k-web": "web"})["web"]
    assert result.calls == 3
    assert result.denied == [Call("k-web", "s3:GetObject", "arn:aws:s3:::out/a.jpg")]
    assert result.unused == ["s3:PutObject", "sqs:SendMessage"]
    assert granted_actions(POLICY) == {"s3:GetObject", "s3:PutObject", "sqs:SendMessage",
                                       "ec2:RunInstances"}
