"""S3 reads and writes of the tasks (images by reference, label objects)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tasks.errors import MissingImage


def read_image(s3: Any, bucket: str, key: str) -> bytes:
    """The bytes of ``s3://bucket/key``; MissingImage when it is not there."""
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchKey", "404", "NoSuchBucket"}:
            raise MissingImage(
                f"The image s3://{bucket}/{key} does not exist ({code}); upload it again."
            ) from None
        raise


def write_label(s3: Any, bucket: str, stem: str, label: str) -> None:
    """The original system's output: object ``<stem>`` whose body is the label."""
    s3.put_object(Bucket=bucket, Key=stem, Body=label.encode("utf-8"),
                  ContentType="text/plain; charset=utf-8")
