"""The embedded AWS server (deploy.moto_server): keep-alive, memoised routing, pinning."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from urllib.parse import urlparse

from config import aws
from config.settings import Settings
from deploy import moto_server
from deploy.embedded_aws import free_port, start_moto, stop_process


def test_one_connection_serves_many_requests(moto_endpoint: str) -> None:
    """werkzeug's dev server answers ``Connection: close``; ours keeps the socket.

    (``/moto-api/``: moto's own data.json can fail on state other tests leave.)
    """
    url = urlparse(moto_endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/moto-api/")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
        local_port = conn.sock.getsockname()[1]
        conn.request("GET", "/moto-api/")
        conn.getresponse().read()
        assert conn.sock.getsockname()[1] == local_port  # the same TCP connection
    finally:
        conn.close()


def test_every_service_the_stack_uses_still_routes(settings: Settings) -> None:
    """The memoised host lookup sends S3, SQS, SNS, EC2 and IAM calls to their backends."""
    s3 = aws.s3_client(settings)
    s3.create_bucket(Bucket=settings.input_bucket)
    s3.put_object(Bucket=settings.input_bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=settings.input_bucket, Key="k")["Body"].read() == b"v"
    sqs = aws.sqs_client(settings)
    assert sqs.create_queue(QueueName=settings.queue)["QueueUrl"].endswith(settings.queue)
    sns = aws.sns_client(settings)
    assert sns.create_topic(Name=settings.queue)["TopicArn"].endswith(settings.queue)
    assert "Reservations" in aws.ec2_client(settings).describe_instances()
    assert "Roles" in aws.client(settings, "iam").list_roles()


def test_the_memo_answers_as_moto_does() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    stock = DomainDispatcherApplication(create_backend_app)
    memo = moto_server.make_app()
    for host in ("s3.us-east-1.amazonaws.com", "sqs.eu-west-1.amazonaws.com",
                 "sns.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com",
                 "iam.amazonaws.com", "s3", "nothing.example", None):
        assert memo.get_backend_for_host(host) == stock.get_backend_for_host(host)
        assert memo.get_backend_for_host(host) == stock.get_backend_for_host(host)


def test_bad_options_are_refused_with_a_message() -> None:
    run = subprocess.run([sys.executable, "-m", "deploy.moto_server", "-p", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--port must be 1..65535" in run.stderr


def test_the_server_can_be_pinned_to_a_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))
    proc = start_moto(free_port(), cpus=frozenset({cpu}))
    try:
        assert os.sched_getaffinity(proc.pid) == {cpu}
    finally:
        stop_process(proc)
