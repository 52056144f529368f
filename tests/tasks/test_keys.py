"""tasks.keys: object keys, request ids and upload file names (pure)."""

from __future__ import annotations

import pytest

from tasks.keys import (
    enrol_key,
    image_key,
    is_request_id,
    new_request_id,
    request_prefixes,
    safe_filename,
    stem_of,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("test_000.jpg", "test_000.jpg"),
    ("../../etc/passwd", "passwd"),
    ("C:\\photos\\me.png", "me.png"),
    ("my photo (1).jpg", "my_photo_1_.jpg"),
    ("ÉLodie.jpg", "Lodie.jpg"),
    ("", "upload.jpg"),
    (None, "upload.jpg"),
    ("...", "upload.jpg"),
])
def test_safe_filename(raw: str | None, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_stem_of() -> None:
    assert stem_of("test_000.jpg") == "test_000"
    assert stem_of("archive.tar.gz") == "archive.tar"
    assert stem_of("noext") == "noext"


    assert stem_of("../x/y.png") == "y"
    assert stem_of(None) == "upload"


def test_request_ids_and_keys() -> None:
    request_id = new_request_id()
    assert is_request_id(request_id) and len(request_id) == 32
    for bad in ("", "A" * 32, "0" * 31, "0" * 33, "../" + "0" * 29, "0" * 31 + "\n"):
        assert not is_request_id(bad)
    assert image_key(request_id, "C:\\a b.jpg") == f"{request_id}/a_b.jpg"
    assert enrol_key(request_id, 2, "p.png") == f"enrol/{request_id}/002-p.png"
    assert request_prefixes(request_id) == (f"{request_id}/", f"enrol/{request_id}/")
