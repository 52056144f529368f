"""The stored gallery: local file and S3 (moto's server over HTTP), versions, conflicts."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from config import aws
from config.settings import Settings
from deploy.embedded_aws import free_port
from recognition.errors import GalleryError
from recognition.gallery_store import GalleryStore

SHA = "c" * 64


def _vec(seed: int, n: int = 1, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> GalleryStore:
    """A store with a model attached, as a local file or an object on moto."""
    if request.param == "file":
        return GalleryStore(str(tmp_path / "sub" / "gallery.json"), weights_name="m",
                            weights_sha256=SHA)
    settings: Settings = request.getfixturevalue("settings")
    client = aws.s3_client(settings, "interactive")
    client.create_bucket(Bucket=settings.model_bucket)
    return GalleryStore.from_settings(settings, s3_client=client, weights_name="m",
                                      weights_sha256=SHA)


def test_enrol_list_remove(store: GalleryStore) -> None:
    assert store.identities() == {} and store.load().version == 0
    assert store.stamp() is None
    store.enroll("ann", _vec(1, 2), ["a1.jpg", "a2.jpg"])
    first = store.stamp()
    gallery = store.enroll("bob", _vec(2), ["b.jpg"])
    assert gallery.version == 2
    assert store.identities() == {"ann": 2, "bob": 1}
    assert store.stamp() not in (None, first)
    loaded = store.load()
    assert loaded.version == 2 and loaded.weights_sha256 == SHA and loaded.dim == 8
    assert store.remove("ann") is True
    assert store.remove("ann") is False
    assert store.identities() == {"bob": 1} and store.load().version == 3


def test_concurrent_enrolments_lose_nothing(store: GalleryStore) -> None:
    errors: list[BaseException] = []

    def enrol(i: int) -> None:
        try:
            store.enroll(f"person {i}", _vec(i), [f"{i}.jpg"])
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.identities()) == 6 and store.load().version == 6


def test_gallery_of_another_model_is_refused(store: GalleryStore) -> None:
    store.enroll("ann", _vec(1), ["a.jpg"])
    other = replace_weights(store, "d" * 64)
    with pytest.raises(GalleryError, match="re-enrol"):
        other.load()
    with pytest.raises(GalleryError, match="re-enrol"):
        other.enroll("bob", _vec(2), ["b.jpg"])
    reader = replace_weights(store, None)  # the web tier: no model attached
    assert reader.identities() == {"ann": 1}
    with pytest.raises(GalleryError, match="no model"):
        reader.enroll("bob", _vec(2), ["b.jpg"])


def replace_weights(store: GalleryStore, sha: str | None) -> GalleryStore:
    """The same location seen by a process with other (or no) weights."""
    backend = store._backend
    client = getattr(backend, "client", None)
    return GalleryStore(store.location, s3_client=client,
                        weights_name=None if sha is None else "m2", weights_sha256=sha)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{not json")
    with pytest.raises(GalleryError, match="not valid JSON"):
        GalleryStore(str(path)).identities()
    path.write_text('{"hello": 1}')
    with pytest.raises(GalleryError, match="not a facefleet gallery"):
        GalleryStore(str(path)).load()


def test_missing_bucket_is_a_clear_error(settings: Settings) -> None:
    store = GalleryStore.from_settings(settings)  # bucket never created
    with pytest.raises(GalleryError, match=r"does not exist.*make up"):
        store.identities()


def test_unreachable_endpoint_says_start_the_stack() -> None:
    settings = replace(Settings(), aws_endpoint=f"http://127.0.0.1:{free_port()}")
    store = GalleryStore.from_settings(settings)
    with pytest.raises(GalleryError, match=r"make up.*--gallery PATH"):
        store.load()


def test_s3_object_is_one_json_document(settings: Settings) -> None:
    client = aws.client(settings, "s3")
    client.create_bucket(Bucket=settings.model_bucket)
    store = GalleryStore.from_settings(settings, s3_client=client, weights_name="m",
                                       weights_sha256=SHA)
    store.enroll("ann", _vec(1), ["a.jpg"])
    bucket, key = settings.gallery[5:].split("/", 1)
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    obj = client.get_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == "application/json"
    assert b'"format":"facefleet-gallery"' in obj["Body"].read()


def test_store_module_does_not_import_torch() -> None:
    code = ("import sys, recognition.gallery_store, recognition.gallery; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
