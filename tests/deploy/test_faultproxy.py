"""The fault proxy (deploy.faultproxy): its pure parts, then boto3, pycurl and the
command line through it to the session's real moto server."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pycurl
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse, HeadersDict
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from botocore.parsers import create_parser
from botocore.retries.standard import RetryContext, StandardRetryConditions
from minio import Minio

from config import aws
from config.settings import Settings
from deploy.embedded_aws import REPO_ROOT, free_port, stop_process
from deploy.faultproxy import (
    CONTROL_PATH,
    Call,
    Fault,
    FaultControl,
    FaultProxy,
    FaultProxyError,
    decide,
    error_reply,
    identify,
    parse_control,
    parse_fault,
    parse_fault_spec,
    start_subprocess,
)

# total_max_attempts: retries={"max_attempts": N} means N retries, N + 1 attempts.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
RETRIES = Config(retries={"total_max_attempts": 10, "mode": "standard"})
SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{}/"
                           "aws4_request, SignedHeaders=host, Signature=00"}


def signed(service: str, **headers: str) -> dict[str, str]:
    """Headers of a request signed for ``service`` (what identify reads)."""
    return {"Authorization": SIGNED["Authorization"].format(service), **headers}


# ---- pure parts ----------------------------------------------------------------------

def test_parse_fault_reads_the_json_form_and_the_command_line_form() -> None:
    fault = Fault("throttle", 0.5, "sqs", frozenset({"SendMessage", "ReceiveMessage"}))
    assert parse_fault(fault.to_json()) == fault
    assert parse_fault_spec("throttle:p=0.5,service=sqs,operations=SendMessage+ReceiveMessage"
                            ) == fault
    assert parse_fault_spec(json.dumps(fault.to_json())) == fault
    assert parse_fault_spec("latency:delay_ms=50,jitter_ms=5") == Fault(
        "latency", delay_ms=50, jitter_ms=5)
    assert parse_fault_spec("reset") == Fault("reset")


@pytest.mark.parametrize(("raw", "message"), [
    ({"kind": "explode"}, "unknown fault kind 'explode'"),
    ({"kind": "reset", "p": 1.5}, "p is a probability"),
    ({"kind": "reset", "p": "half"}, "p is a number"),
    ({"kind": "reset", "service": "dynamodb"}, "unknown service 'dynamodb'"),
    ({"kind": "reset", "probability": 1}, "unknown fault field(s) ['probability']"),
    ({"kind": "latency", "delay_ms": -1}, "not negative"),
    ({"kind": "reset", "operations": [1]}, "operations is a list"),
    (["reset"], "a fault is a JSON object"),
])
def test_parse_fault_says_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(FaultProxyError) as caught:
        parse_fault(raw)
    assert message in str(caught.value)


def test_parse_control_validates_the_whole_body() -> None:
    assert parse_control(b'{"faults": [{"kind": "reset"}], "seed": 3}') == (
        [Fault("reset")], 3, False)
    for body, message in [(b"{not json", "not valid JSON"), (b"[]", '{"faults": [...]'),
                          (b'{"faults": [], "seed": "x"}', "seed is an integer"),
                          (b'{"faults": [], "extra": 1}', "unknown field(s) ['extra']")]:
        with pytest.raises(FaultProxyError, match=re.escape(message)):
            parse_control(body)


def test_identify_tells_service_operation_and_protocol() -> None:
    sqs_json = identify("POST", "/", signed("sqs", **{"X-Amz-Target": "AmazonSQS.SendMessage"}),
                        b'{"QueueUrl": "http://h/123456789012/q", "MessageBody": "x"}')
    assert sqs_json == Call("sqs", "SendMessage", json_protocol=True)
    sqs_query = identify("POST", "/123456789012/q", signed("sqs"),
                         b"Action=ReceiveMessage&Version=2012-11-05")
    assert sqs_query == Call("sqs", "ReceiveMessage")
    assert identify("HEAD", "/bucket/key", signed("s3"), b"") == Call("s3", "GetObject")
    assert identify("PUT", "/bucket/a/b", signed("s3"), b"data") == Call("s3", "PutObject")
    assert identify("POST", "/", signed("ec2"), b"Action=RunInstances").service == "ec2"
    assert identify("GET", "/moto-api/", {}, b"") == Call("other")


def test_decide_draws_each_matching_fault_from_the_seeded_rng() -> None:
    call = Call("sqs", "SendMessage")
    throttle = Fault("throttle", 0.5, "sqs")

    def draws(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [decide([throttle], call, rng).action for _ in range(200)]

    assert draws(7) == draws(7)  # a seed replays
    assert 70 < draws(7).count("throttle") < 130
    assert decide([Fault("reset", 0.0)], call, random.Random(1)).action is None
    assert decide([Fault("reset", 1.0, "s3")], call, random.Random(1)).action is None
    assert decide([Fault("reset", operations=frozenset({"ReceiveMessage"}))], call,
                  random.Random(1)).action is None
    slow = [Fault("latency", delay_ms=100, jitter_ms=10), Fault("latency", delay_ms=50),
            Fault("error"), Fault("reset")]
    decision = decide(slow, call, random.Random(1))
    assert decision.action == "error"  # the first terminal fault that fires
    assert 0.150 <= decision.delay_s <= 0.160


@pytest.mark.parametrize(("service", "operation", "json_protocol", "protocol"), [
    ("sqs", "SendMessage", True, "json"),
    ("sqs", "SendMessage", False, "query"),
    ("s3", "GetObject", False, "rest-xml"),
    ("sns", "Publish", False, "query"),
    ("ec2", "DescribeInstances", False, "ec2"),
    ("iam", "GetRole", False, "query"),
])
def test_error_replies_parse_as_retryable_errors_in_botocore(
        service: str, operation: str, json_protocol: bool, protocol: str) -> None:
    """botocore's own parser reads the code the proxy meant, and its standard retry
    mode retries it (as throttling, or as a transient 5xx)."""
    model = boto3.session.Session().client(
        service, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="x").meta.service_model.operation_model(operation)
    expected = {"throttle": {"sqs": "RequestThrottled", "s3": "SlowDown",
                             "ec2": "RequestLimitExceeded"}.get(service, "Throttling"),
                "error": "ServiceFailure" if service == "iam" else "InternalError"}
    for kind, code in expected.items():
        reply = error_reply(Call(service, operation, json_protocol), kind)
        headers = HeadersDict(dict(reply.headers))
        parsed = create_parser(protocol).parse(
            {"status_code": reply.status, "headers": headers, "body": reply.body},
            model.output_shape)
        assert parsed["Error"]["Code"] == code
        context = RetryContext(attempt_number=1, operation_model=model, parsed_response=parsed,
                               http_response=AWSResponse("", reply.status, headers, None))
        assert StandardRetryConditions(max_attempts=3).is_retryable(context)


# ---- through the proxy to moto's server ----------------------------------------------

@pytest.fixture(scope="module")
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, seed=1) as running:
        yield running


@pytest.fixture
def control(proxy: FaultProxy) -> Iterator[FaultControl]:
    control = FaultControl(proxy.url)
    control.clear()
    yield control
    control.clear()


@pytest.fixture
def proxied(settings: Settings, proxy: FaultProxy) -> Settings:
    return replace(settings, aws_endpoint=proxy.url)


def client(settings: Settings, service: str, config: Config | None = None) -> Any:
    return boto3.client(service, config=config, **aws.endpoint_kwargs(settings))


def test_without_faults_everything_is_forwarded(proxied: Settings,
                                                control: FaultControl) -> None:
    s3 = aws.s3_client(proxied)
    s3.create_bucket(Bucket=proxied.input_bucket)
    big = random.Random(0).randbytes(3 * 1024 * 1024)  # botocore sends Expect: 100-continue
    s3.put_object(Bucket=proxied.input_bucket, Key="big.bin", Body=big)
    s3.put_object(Bucket=proxied.input_bucket, Key="stream.bin", Body=io.BytesIO(b"x" * 1000))
    assert s3.get_object(Bucket=proxied.input_bucket, Key="big.bin")["Body"].read() == big
    assert s3.head_object(Bucket=proxied.input_bucket, Key="big.bin")["ContentLength"] == len(big)
    listed = s3.list_objects_v2(Bucket=proxied.input_bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["big.bin", "stream.bin"]

    sqs = aws.sqs_client(proxied)
    url = sqs.create_queue(QueueName=proxied.queue)["QueueUrl"]
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
    assert time.monotonic() - started >= 1.9  # the long poll was held, not cut
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    message = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"][0]
    assert message["Body"] == "hello"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    sns = aws.sns_client(proxied)
    topic = sns.create_topic(Name=f"topic-{proxied.queue}")["TopicArn"]
    assert sns.publish(TopicArn=topic, Message="hi")["MessageId"]

    counters = control.state()["counters"]
    assert counters["s3"]["forwarded"] == 6
    assert counters["sqs"]["forwarded"] == 5
    assert counters["sns"]["forwarded"] == 2
    assert all(c[name] == 0 for c in counters.values()
               for name in ("delayed", "reset", "throttled", "errored", "upstream_failed"))


def test_minio_and_chunked_uploads_pass_through(proxied: Settings, proxy: FaultProxy,
                                               control: FaultControl) -> None:
    """The workers' S3 client (minio, on urllib3), and a body sent with
    ``Transfer-Encoding: chunked`` (relayed with its length: moto sees the same bytes)."""
    aws.s3_client(proxied).create_bucket(Bucket=proxied.model_bucket)
    store = Minio(proxy.url.removeprefix("http://"), access_key="testing",
                  secret_key="testing", secure=False, region=proxied.region)
    store.put_object(proxied.model_bucket, "m.bin", io.BytesIO(b"weights"), 7)
    with contextlib.closing(store.get_object(proxied.model_bucket, "m.bin")) as answer:
        assert answer.read() == b"weights"
        answer.release_conn()

    conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
    try:
        conn.request("PUT", f"/{proxied.model_bucket}/chunked.bin",
                     body=iter([b"one,", b"two,", b"three"]), encode_chunked=True,
                     headers={**signed("s3"), "Transfer-Encoding": "chunked"})
        assert conn.getresponse().read() == b""
        conn.request("GET", f"/{proxied.model_bucket}/chunked.bin", headers=signed("s3"))
        assert conn.getresponse().read() == b"one,two,three"
    finally:
        conn.close()
    assert control.counters("s3")["forwarded"] == 5


def test_sqs_throttling_fails_a_call_without_retries_and_is_retried_with_them(
        proxied: Settings, control: FaultControl) -> None:
    url = aws.sqs_client(proxied).create_queue(QueueName=proxied.queue)["QueueUrl"]
    control.set([Fault("throttle", 1.0, "sqs")], seed=1, reset_counters=True)
    with pytest.raises(ClientError) as caught:
        client(proxied, "sqs", NO_RETRIES).send_message(QueueUrl=url, MessageBody="m")
    assert aws.error_code(caught.value) == "RequestThrottled"
    assert control.counters("sqs")["throttled"] == 1
    assert control.counters("sqs")["forwarded"] == 0

    control.set([Fault("throttle", 0.5, "sqs")], seed=1, reset_counters=True)
    sqs = client(proxied, "sqs", RETRIES)
    for n in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    counts = control.counters("sqs")
    assert counts["forwarded"] == 4
    assert counts["throttled"] >= 1  # botocore retried those


def test_s3_slowdown_and_internal_error(proxied: Settings, control: FaultControl) -> None:
    aws.s3_client(proxied).create_bucket(Bucket=proxied.output_bucket)
    control.set([Fault("throttle", 1.0, "s3", frozenset({"PutObject"}))])
    s3 = client(proxied, "s3", NO_RETRIES)
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=proxied.output_bucket, Key="k", Body=b"v")
    assert aws.error_code(caught.value) == "SlowDown"
    assert s3.list_objects_v2(Bucket=proxied.output_bucket)["KeyCount"] == 0  # not PutObject

    control.set([Fault("error", 1.0, "s3")])
    with pytest.raises(ClientError) as caught:
        s3.list_objects_v2(Bucket=proxied.output_bucket)
    assert aws.error_code(caught.value) == "InternalError"

    control.set([Fault("throttle", 0.5, "s3")], seed=2, reset_counters=True)
    retrying = client(proxied, "s3", RETRIES)
    for n in range(4):
        retrying.put_object(Bucket=proxied.output_bucket, Key=f"k{n}", Body=b"v")
    counts = control.counters("s3")
    assert counts["forwarded"] == 4
    assert counts["throttled"] >= 1


def test_ec2_iam_and_sqs_query_protocol(proxied: Settings, proxy: FaultProxy,
                                        control: FaultControl) -> None:
    ec2, iam = client(proxied, "ec2", NO_RETRIES), client(proxied, "iam", NO_RETRIES)
    assert ec2.describe_regions()["Regions"]
    assert "Roles" in iam.list_roles()
    control.set([Fault("throttle", 1.0, "ec2"), Fault("error", 1.0, "iam")])
    with pytest.raises(ClientError) as caught:
        ec2.describe_instances()
    assert aws.error_code(caught.value) == "RequestLimitExceeded"
    with pytest.raises(ClientError) as caught:
        iam.list_roles()
    assert aws.error_code(caught.value) == "ServiceFailure"

    control.set([Fault("throttle", 1.0, "sqs", frozenset({"ListQueues"}))])
    conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
    try:  # the query protocol, as older SQS clients speak it
        conn.request("POST", "/", body="Action=ListQueues&Version=2012-11-05", headers={
            **signed("sqs"), "Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        assert answer.status == 400
        assert b"<Code>RequestThrottled</Code>" in answer.read()
    finally:
        conn.close()
    assert [control.counters(s)["forwarded"] for s in ("ec2", "iam", "sqs")] == [1, 1, 0]


def test_reset_is_a_connection_error(proxied: Settings, control: FaultControl) -> None:
    control.set([Fault("reset", 1.0, "sqs")])
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        client(proxied, "sqs", NO_RETRIES).list_queues()
    assert control.counters("sqs")["reset"] == 1
    control.clear()
    client(proxied, "sqs", NO_RETRIES).list_queues()  # a new connection works


def test_latency_adds_at_least_the_delay(proxied: Settings, control: FaultControl) -> None:
    sqs = client(proxied, "sqs")
    sqs.list_queues()  # connect first: only the delay is timed
    control.set([Fault("latency", 1.0, "sqs", delay_ms=300, jitter_ms=50)])
    started = time.monotonic()
    sqs.list_queues()
    assert time.monotonic() - started >= 0.3
    assert control.counters("sqs")["delayed"] == 1
    assert control.counters("sqs")["forwarded"] == 2


def test_pycurl_posts_like_kombus_async_sqs_client(proxied: Settings,
                                                   control: FaultControl) -> None:
    """kombu's worker loop calls SQS with pycurl: signed JSON POSTs on a kept connection,
    with ``Expect: 100-continue`` over 1 KiB."""
    url = aws.sqs_client(proxied).create_queue(QueueName=proxied.queue)["QueueUrl"]
    curl = pycurl.Curl()
    try:
        for body in ("x" * 2000, "y"):
            request = AWSRequest("POST", proxied.aws_endpoint + "/", headers={
                "X-Amz-Target": "AmazonSQS.SendMessage",
                "Content-Type": "application/x-amz-json-1.0"},
                data=json.dumps({"QueueUrl": url, "MessageBody": body}))
            SigV4Auth(Credentials("testing", "testing"), "sqs", "us-east-1").add_auth(request)
            answer = io.BytesIO()
            curl.setopt(pycurl.URL, request.url)
            curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in request.headers.items()])
            curl.setopt(pycurl.POSTFIELDS, request.body)
            curl.setopt(pycurl.WRITEDATA, answer)
            curl.perform()
            assert curl.getinfo(pycurl.RESPONSE_CODE) == 200, answer.getvalue()
            assert "MessageId" in json.loads(answer.getvalue())
        assert curl.getinfo(pycurl.NUM_CONNECTS) == 0  # the second reused the connection
    finally:
        curl.close()
    assert control.counters("sqs")["forwarded"] == 3


def refusal(proxy_url: str, method: str, body: bytes) -> tuple[int, str]:
    """The status and message of a control request the proxy refuses."""
    request = urllib.request.Request(proxy_url + CONTROL_PATH, data=body, method=method)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    with caught.value as answer:
        return answer.code, json.load(answer)["error"]


def test_control_path_validates_and_is_never_forwarded(proxy: FaultProxy,
                                                       control: FaultControl) -> None:
    with pytest.raises(FaultProxyError, match="unknown fault kind 'explode'"):
        control.set([{"kind": "explode"}])
    assert refusal(proxy.url, "POST", b"{oops") == (400, "the body is not valid JSON: "
                                                    "Expecting property name enclosed in "
                                                    "double quotes: line 1 column 2 (char 1)")
    assert refusal(proxy.url, "PUT", b"{}") == (405, "/__faults__ takes GET, POST or DELETE")
    state = control.set([Fault("reset", 0.25, "ec2")], seed=9)
    assert state["faults"] == [Fault("reset", 0.25, "ec2").to_json()]
    assert state["seed"] == 9
    assert state["counters"] == {}  # nothing of the above reached moto, nor was counted


def test_the_command_line_serves_until_sigterm(moto_endpoint: str) -> None:
    proc, url = start_subprocess(moto_endpoint, faults=[Fault("throttle", 0.1, "sqs")],
                                 seed=4)
    try:
        state = FaultControl(url).state()
        assert state["faults"] == [Fault("throttle", 0.1, "sqs").to_json()]
        assert state["seed"] == 4
    finally:
        stop_process(proc)
    assert proc.returncode == 0

    port = free_port()
    cli = subprocess.Popen(
        [sys.executable, "-m", "deploy.faultproxy", "--listen", f"127.0.0.1:{port}",
         "--upstream", moto_endpoint, "--fault", "latency:delay_ms=5"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline().strip() == (
            f"fault proxy on http://127.0.0.1:{port} -> {moto_endpoint}")
        cli.send_signal(signal.SIGINT)
        assert cli.wait(10) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stdout.close()  # type: ignore[union-attr]


def test_the_command_line_refuses_bad_faults_and_non_loopback(moto_endpoint: str) -> None:
    for args in (["--fault", "explode"], ["--listen", "0.0.0.0:0"]):
        run = subprocess.run([sys.executable, "-m", "deploy.faultproxy", "--upstream",
                              moto_endpoint, *args], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=30)
        assert run.returncode == 2
        assert ("unknown fault kind" in run.stderr) or ("loopback only" in run.stderr)
