"""Persist the gallery as ONE versioned JSON object: a local file or ``s3://bucket/key``.

No torch here — the web tier lists and removes identities through this module.

Writes are read-modify-write and never lose a concurrent update: on S3 the write is
conditional on the ETag that was read (``If-Match``; ``If-None-Match: *`` for the first
write) and is retried on a conflict; a local file is rewritten atomically (temporary
file + rename) under an exclusive ``flock`` on a ``.lock`` file beside it. ``stamp()`` is
the cheap change check workers poll: the S3 ETag (one HEAD request) or the file's
inode, mtime and size.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as EndpointDown

from config import aws
from config.aws import CONFLICT, NO_SUCH_BUCKET, error_code, is_missing
from config.settings import Settings
from recognition.errors import GalleryError
from recognition.gallery import Gallery

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MAX_CONFLICT_RETRIES = 8


class _Conflict(Exception):
    """Someone else wrote the object between our read and our write."""


class _Backend(Protocol):
    def read(self) -> tuple[bytes | None, str | None]: ...
    def head(self) -> str | None: ...
    def write(self, body: bytes, expected: str | None) -> None: ...
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]: ...


class GalleryStore:
    """Load, enrol and remove identities in a stored gallery.

    ``weights_name`` / ``weights_sha256`` attach the loaded model: ``load`` then refuses a
    gallery made by other weights and ``enroll`` records them. A store without them
    (the web tier) can still list and remove identities.
    """

    def __init__(
        self, location: str, *, s3_client: S3Client | None = None, weights_name: str | None = None,
        weights_sha256: str | None = None, endpoint: str | None = None,
    ) -> None:
        self.location = location
        self.weights_name = weights_name
        self.weights_sha256 = weights_sha256
        if location.startswith("s3://"):
            bucket, _, key = location[5:].partition("/")
            if not bucket or not key:
                raise GalleryError(f"gallery location {location!r} must look like s3://bucket/key")
            if s3_client is None:
                raise GalleryError(f"an S3 client is needed for the gallery at {location}")
            self._backend: _Backend = _S3Backend(s3_client, bucket, key, endpoint)
        else:
            self._backend = _FileBackend(Path(location).expanduser())

    @classmethod
    def from_settings(
        cls, settings: Settings, location: str | None = None, *,
        s3_client: S3Client | None = None,
        weights_name: str | None = None, weights_sha256: str | None = None,
    ) -> GalleryStore:
        """A store at ``location`` (default ``settings.gallery``), with an S3 client
        built from the settings when the location is ``s3://`` and none is given."""
        location = location or settings.gallery
        if location.startswith("s3://") and s3_client is None:
            # A person or a request waits on the gallery: fail fast, never hang.
            s3_client = aws.s3_client(settings, "interactive")
        return cls(location, s3_client=s3_client, weights_name=weights_name,
                   weights_sha256=weights_sha256, endpoint=settings.aws_endpoint)

    def load(self) -> Gallery:
        """The current gallery (empty, version 0, when nothing is stored yet)."""
        return self.load_with_stamp()[0]

    def load_with_stamp(self) -> tuple[Gallery, str | None]:
        """The gallery and the stamp it was read at (for :meth:`stamp` comparisons)."""
        body, stamp = self._backend.read()
        gallery = self._parse(body)
        if self.weights_sha256 is not None and gallery.dim is not None:
            gallery.check_model(self.weights_name or "?", self.weights_sha256, gallery.dim)
        return gallery, stamp

    def stamp(self) -> str | None:
        """A cheap marker that changes whenever the stored gallery changes."""
        return self._backend.head()

    def identities(self) -> dict[str, int]:
        """Identity name → number of enrolled photos."""
        return self._parse(self._backend.read()[0]).counts()

    def enroll(self, name: str, embeddings: Any, sources: list[str]) -> Gallery:
        """Add photos (k x D embeddings, k source names) to ``name``; returns the new gallery."""
        if self.weights_name is None or self.weights_sha256 is None:
            raise GalleryError("this gallery store has no model attached; cannot enrol")
        # numpy, not torch: a torch tensor converts via __array__
        vectors = np.asarray(embeddings, dtype=np.float32)
        return self._update(lambda g: g.enrolled(
            name, vectors, sources, weights_name=self.weights_name or "",
            weights_sha256=self.weights_sha256 or "",
        ))

    def remove(self, name: str) -> bool:
        """Remove ``name``; False when it was not enrolled."""
        if name not in self.identities():
            return False
        try:
            self._update(lambda g: g.without(name))
        except GalleryError:
            if name in self.identities():
                raise
            return False  # removed concurrently by someone else
        return True

    def _update(self, change: Callable[[Gallery], Gallery]) -> Gallery:
        with self._backend.locked():
            for _ in range(MAX_CONFLICT_RETRIES):
                body, stamp = self._backend.read()
                new = change(self._parse(body))
                data = json.dumps(new.to_json(), separators=(",", ":")).encode()
                try:
                    self._backend.write(data, stamp)
                except _Conflict:
                    continue
                return new
        raise GalleryError(
            f"the gallery at {self.location} kept changing under us "
            f"({MAX_CONFLICT_RETRIES} conflicting writes); try again"
        )

    def _parse(self, body: bytes | None) -> Gallery:
        if body is None:
            return Gallery()
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GalleryError(f"the gallery at {self.location} is not valid JSON ({exc})") \
                from None
        try:
            return Gallery.from_json(doc)
        except GalleryError as exc:
            raise GalleryError(f"the gallery at {self.location}: {exc}") from None


class _FileBackend:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _stamp(self, st: os.stat_result) -> str:
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def read(self) -> tuple[bytes | None, str | None]:
        try:
            with self.path.open("rb") as f:
                return f.read(), self._stamp(os.fstat(f.fileno()))
        except FileNotFoundError:
            return None, None
        except IsADirectoryError:
            raise GalleryError(f"the gallery path {self.path} is a folder; give a file name") \
                from None
        except OSError as exc:
            raise GalleryError(f"cannot read the gallery {self.path}: {exc.strerror}") from None

    def head(self) -> str | None:
        try:
            return self._stamp(self.path.stat())
        except FileNotFoundError:
            return None

    def write(self, body: bytes, expected: str | None) -> None:
        # Under the flock nobody else writes; the rename makes readers see old or new.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = self.path.with_name(self.path.name + ".lock").open("a")
        except OSError as exc:
            raise GalleryError(f"cannot write the gallery {self.path}: {exc.strerror}") \
                from None
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield


class _S3Backend:
    def __init__(self, client: S3Client, bucket: str, key: str, endpoint: str | None) -> None:
        self.client, self.bucket, self.key, self.endpoint = client, bucket, key, endpoint

    def read(self) -> tuple[bytes | None, str | None]:
        with self._errors():
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
            except self.client.exceptions.NoSuchKey:
                return None, None
            return obj["Body"].read(), obj["ETag"]

    def head(self) -> str | None:
        with self._errors():
            try:
                return str(self.client.head_object(Bucket=self.bucket, Key=self.key)["ETag"])
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise

    def write(self, body: bytes, expected: str | None) -> None:
        with self._errors():
            try:
                if expected:  # only if nobody wrote since our read
                    self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                           ContentType="application/json", IfMatch=expected)
                else:  # only if there is still no gallery at all
                    self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                           ContentType="application/json", IfNoneMatch="*")
            except ClientError as exc:
                if error_code(exc) in CONFLICT:
                    raise _Conflict from None
                raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield  # S3 writes are conditional instead

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        where = f"s3://{self.bucket}/{self.key}"
        try:
            yield
        except EndpointDown:  # refused, DNS, connect timeout
            endpoint = self.endpoint or "AWS"
            raise GalleryError(
                f"cannot reach the S3 endpoint {endpoint} holding the gallery {where}: "
                "start the stack (`make up`) or use a local gallery file "
                "(--gallery PATH or FACEFLEET_GALLERY=PATH)"
            ) from None
        except ClientError as exc:
            code = error_code(exc)
            if code == NO_SUCH_BUCKET:
                raise GalleryError(
                    f"the bucket {self.bucket!r} for the gallery {where} does not exist: "
                    "provision the stack (`make up`) or point FACEFLEET_GALLERY elsewhere"
                ) from None
            if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise GalleryError(f"access to the gallery {where} was denied ({code})") \
                    from None
            raise GalleryError(f"S3 refused the gallery request for {where}: {exc}") from None
        except BotoCoreError as exc:
            raise GalleryError(f"cannot use the gallery {where}: {exc}") from None
