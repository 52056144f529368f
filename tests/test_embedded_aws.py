"""The embedded AWS endpoint answers real boto3 calls over HTTP."""

from __future__ import annotations

from config import aws
from config.settings import Settings


def test_moto_server_answers_s3_and_sqs(settings: Settings) -> None:
    s3 = aws.client(settings, "s3")
    s3.create_bucket(Bucket=settings.input_bucket)
    s3.put_object(Bucket=settings.input_bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=settings.input_bucket, Key="k")["Body"].read() == b"v"
    sqs = aws.client(settings, "sqs")
    url = sqs.create_queue(QueueName=settings.queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["hello"]
