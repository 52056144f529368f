"""S3 reads and writes of the tasks (images by reference, label objects)."""

from __future__ import annotations

from tasks.errors import MissingImage
from tasks.objectstore import MissingObject, ObjectStore


def read_image(store: ObjectStore, bucket: str, key: str) -> bytes:
    """The bytes of ``s3://bucket/key``; MissingImage when it is not there."""
    try:
        return store.get(bucket, key)
    except MissingObject as exc:
        raise MissingImage(f"The image s3://{bucket}/{key} does not exist; upload it "
                           "again.") from exc


def write_label(store: ObjectStore, bucket: str, stem: str, label: str) -> None:
    """The original system's output: object ``<stem>`` whose body is the label."""
    store.put(bucket, stem, label.encode("utf-8"), "text/plain; charset=utf-8")
