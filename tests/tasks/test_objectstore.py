"""The request path's S3 client (minio) against moto's server over HTTP."""

from __future__ import annotations

import pytest

from config import aws
from config.settings import Settings
from deploy.embedded_aws import free_port
from deploy.faultproxy import FaultProxy, parse_fault
from tasks.errors import MissingImage, MissingObject, StorageError
from tasks.objectstore import ObjectStore, endpoint_host, read_image, write_label


def test_endpoint_host_maps_urls_and_aws() -> None:
    assert endpoint_host("http://127.0.0.1:5055", "us-east-1") == ("127.0.0.1:5055", False)
    assert endpoint_host("https://s3.example.com/", "eu-west-1") == ("s3.example.com", True)
    assert endpoint_host(None, "eu-west-1") == ("s3.eu-west-1.amazonaws.com", True)
    for bad in ("127.0.0.1:5055", "ftp://host", "http://host/some/path"):
        with pytest.raises(ValueError, match="S3 endpoint"):
            endpoint_host(bad, "us-east-1")


@pytest.fixture
def bucket(settings: Settings) -> str:
    aws.client(settings, "s3").create_bucket(Bucket=settings.output_bucket)
    return settings.output_bucket


def test_put_then_get_round_trips_and_boto3_reads_the_same_object(
        settings: Settings, bucket: str) -> None:
    store = ObjectStore.from_settings(settings)
    key = "labels/a name with spaces é+ü"
    store.put(bucket, key, "Émilie".encode(), "text/plain; charset=utf-8")
    assert store.get(bucket, key) == "Émilie".encode()
    stored = aws.client(settings, "s3").get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == "Émilie".encode()
    assert stored["ContentType"] == "text/plain; charset=utf-8"


def test_a_put_replaces_the_object_and_an_empty_body_is_stored(
        settings: Settings, bucket: str) -> None:
    store = ObjectStore.from_settings(settings)
    store.put(bucket, "k", b"first")
    store.put(bucket, "k", b"")
    assert store.get(bucket, "k") == b""


def test_a_missing_key_or_bucket_is_missing_object(settings: Settings, bucket: str) -> None:
    store = ObjectStore.from_settings(settings)
    with pytest.raises(MissingObject, match=rf"s3://{bucket}/nope.*does not exist"):
        store.get(bucket, "nope")
    with pytest.raises(MissingObject, match="NoSuchBucket"):
        store.get("no-such-bucket-here", "k")
    with pytest.raises(MissingObject, match="NoSuchBucket"):
        store.put("no-such-bucket-here", "k", b"x")


def test_the_task_helpers_say_what_is_missing(settings: Settings, bucket: str) -> None:
    store = ObjectStore.from_settings(settings)
    write_label(store, bucket, "test_000", "Paul")
    assert store.get(bucket, "test_000") == b"Paul"
    with pytest.raises(MissingImage, match="does not exist; upload it again") as info:
        read_image(store, bucket, "uploads/gone.jpg")
    assert info.value.code == "missing_image"


def test_an_unreachable_endpoint_is_a_storage_error_after_bounded_retries() -> None:
    store = ObjectStore.connect(f"http://127.0.0.1:{free_port()}", "us-east-1", "k", "s")
    with pytest.raises(StorageError, match=r"unreachable.*Check the endpoint") as info:
        store.get("bucket", "key")
    assert info.value.code == "storage_unreachable"
    assert not isinstance(info.value, MissingObject)


def test_an_invalid_name_is_refused_with_its_reason(settings: Settings, bucket: str) -> None:
    store = ObjectStore.from_settings(settings)
    with pytest.raises(StorageError, match=f"Cannot write s3://{bucket}/: ") as info:
        store.put(bucket, "", b"x")
    assert info.value.code == "storage_refused"
    with pytest.raises(StorageError, match="Cannot read s3://a/k: "):
        store.get("a", "k")  # a bucket name S3 does not allow (too short)


def test_aws_mode_signs_with_botocores_credential_chain(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.credentials import Credentials as BotocoreKeys

    from tasks.objectstore import BotocoreCredentials

    keys = BotocoreCredentials(BotocoreKeys("AKIDEXAMPLE", "secret", "session-token"))
    retrieved = keys.retrieve()
    assert (retrieved.access_key, retrieved.secret_key, retrieved.session_token) == (
        "AKIDEXAMPLE", "secret", "session-token")

    # No endpoint: AWS itself, credentials from the environment through botocore.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    store = ObjectStore.connect(None, "eu-west-1")
    assert isinstance(store.client._provider, BotocoreCredentials)
    assert store.client._provider.retrieve().access_key == "AKIDFROMENV"
    assert store.client._base_url.host == "s3.eu-west-1.amazonaws.com"
    assert store.client._base_url.is_https


def test_one_store_per_process_serves_the_tasks_and_the_result_backend(
        settings: Settings) -> None:
    from tasks.factory import make_app

    store = ObjectStore.from_settings(settings)
    assert make_app(settings).backend.store is store
    assert ObjectStore.from_settings(settings) is store


def test_throttling_and_internal_errors_are_ridden_out(settings: Settings, bucket: str) -> None:
    """S3 answering SlowDown or InternalError to a fifth of the calls (twice the fault
    benchmark's rate): every call still succeeds, through the retries (the fault proxy
    before moto's server; seeded, so the same faults every run)."""
    faults = [parse_fault({"kind": "throttle", "service": "s3", "p": 0.1}),
              parse_fault({"kind": "error", "service": "s3", "p": 0.1})]
    assert settings.aws_endpoint is not None
    with FaultProxy(settings.aws_endpoint, faults=faults, seed=7) as proxy:
        store = ObjectStore.connect(proxy.url, settings.region, "testing", "testing")
        for i in range(30):
            store.put(bucket, f"slow/{i}", str(i).encode())
            assert store.get(bucket, f"slow/{i}") == str(i).encode()
        counters = proxy.state.to_json()["counters"]["s3"]
    assert counters["throttled"] >= 3 and counters["errored"] >= 3, counters
