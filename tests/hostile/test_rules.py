"""The pure rules behind the refusals: task arguments, file names, identity names and
the probe over every file of the corpus (no I/O, milliseconds)."""

from __future__ import annotations

from typing import Any

import pytest

from recognition.errors import GalleryError, ImageError
from recognition.gallery import Gallery
from recognition.names import lookalike, name_problem, validate_name
from recognition.probe import probe
from tasks.arguments import enroll_problem, recognize_problem
from tasks.keys import enrol_key, filename_problem, image_key, new_request_id
from tests.hostile import inputs

BUCKET = "facefleet-input"
ID = new_request_id()
OTHER = new_request_id()


def test_the_web_tiers_own_messages_pass() -> None:
    key = image_key(ID, "my photo.jpg")
    assert recognize_problem((BUCKET, key, ID, "my_photo"), task_id=ID,
                             input_bucket=BUCKET) is None
    keys = [enrol_key(ID, n, f"p{n}.jpg") for n in range(3)]
    assert enroll_problem(("Paul", BUCKET, keys), task_id=ID, input_bucket=BUCKET) is None


@pytest.mark.parametrize(("args", "task_id", "fragment"), [
    (("other", f"{ID}/a.jpg", ID, "a"), ID, "is not the input bucket"),
    ((BUCKET, f"{OTHER}/a.jpg", ID, "a"), ID, "is not an image key of request"),
    ((BUCKET, f"{ID}/../{OTHER}/a.jpg", ID, "a"), ID, "is not an image key"),
    ((BUCKET, f"{ID}/sub/a.jpg", ID, "a"), ID, "is not an image key"),
    ((BUCKET, f"{ID}/", ID, "a"), ID, "is not an image key"),
    ((BUCKET, f"{OTHER}/a.jpg", OTHER, "a"), ID, "is not its task id"),
    ((BUCKET, f"{ID}/a.jpg", ID, "results/x"), ID, "is not the stem of"),
    ((BUCKET, f"{ID}/a.jpg", ID, "a"), "../x", "is not a request id"),
    ((BUCKET, f"{ID}/a.jpg", ID, "a"), None, "is not a request id"),
    ((1, 2, 3, 4), ID, "four strings"),
    ((BUCKET, f"{ID}/a.jpg"), ID, "four strings"),
])
def test_forged_recognize_arguments(args: tuple[Any, ...], task_id: str | None,
                                    fragment: str) -> None:
    problem = recognize_problem(args, task_id=task_id, input_bucket=BUCKET)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(("args", "fragment"), [
    (("Paul", "other", [enrol_key(ID, 0, "a.jpg")]), "is not the input bucket"),
    (("Paul", BUCKET, [enrol_key(OTHER, 0, "a.jpg")]), "is not photo 0 of enrolment"),
    (("Paul", BUCKET, [enrol_key(ID, 1, "a.jpg")]), "is not photo 0"),
    (("Paul", BUCKET, [f"enrol/{ID}/000-../../x"]), "is not photo 0"),
    (("Paul", BUCKET, []), "it names 0 photos"),
    (("Paul", BUCKET, [enrol_key(ID, n, "a.jpg") for n in range(257)]), "1 to 256"),
    (("Paul", BUCKET, "enrol/x"), "list of keys"),
])
def test_forged_enroll_arguments(args: tuple[Any, ...], fragment: str) -> None:
    problem = enroll_problem(args, task_id=ID, input_bucket=BUCKET)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(("raw", "fragment"), [
    ("../../etc/passwd", "'..'"), ("..\\..\\x.png", "'..'"), ("a/../b.png", "'..'"),
    ("a\x00.png", "U+0000 at position 2"), ("a\x1b[2J.png", "U+001B"),
    ("a\u0085.png", "U+0085"), ("é" * 200, "400 bytes"),
])
def test_hostile_file_names(raw: str, fragment: str) -> None:
    problem = filename_problem(raw)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("raw", [None, "", "photo.jpg", "C:\\photos\\me.png", "a..b.png",
                                 "my photo (1).JPG", "é.png"])
def test_ordinary_file_names_pass(raw: str | None) -> None:
    assert filename_problem(raw) is None


@pytest.mark.parametrize(("name", "fragment"), [
    ("", "empty"), ("Pa\tul", "U+0009"), ("P\u0430ul", "CYRILLIC"), ("Pa\u200bul", "U+200B"),
    ("\uff30aul", "FULLWIDTH"), (" Paul", "space"), ("a  b", "two spaces"), ("...", "letter"),
    ("unknown", "labels"), ("NOFACE", "labels"), ("x" * 65, "65 characters"),
])
def test_identity_names_refused_with_cause(name: str, fragment: str) -> None:
    problem = name_problem(name)
    assert problem is not None and fragment in problem


def test_stored_names_keep_the_rules_they_were_enrolled_under() -> None:
    assert validate_name("a  b", stored=True) == "a  b"
    with pytest.raises(GalleryError):
        validate_name("a  b")


def test_case_lookalikes_are_refused_by_the_gallery() -> None:
    import numpy as np

    weights = {"weights_name": "m", "weights_sha256": "a" * 64}
    gallery = Gallery().enrolled("Paul", np.eye(1, 3, dtype=np.float32), ["p.jpg"], **weights)
    assert lookalike("paul", gallery.identities) == "Paul"
    assert lookalike("Paul", gallery.identities) is None
    with pytest.raises(GalleryError, match="only in letter case"):
        gallery.enrolled("PAUL", np.eye(1, 3, dtype=np.float32), ["q.jpg"], **weights)


@pytest.mark.parametrize(("build", "code"), [
    (lambda: inputs.png_claiming(100_000, 100_000), "too_many_pixels"),
    (inputs.png_zlib_bomb, "too_many_pixels"),
    (lambda: inputs.jpeg_claiming(65_000, 65_000), "too_many_pixels"),
    (lambda: inputs.gif_claiming(65_535, 65_535), "too_many_pixels"),
    (lambda: inputs.tiff_claiming(100_000, 100_000), "too_many_pixels"),
    (lambda: inputs.webp_claiming(16_384, 16_384), "too_many_pixels"),
    (inputs.truncated_png, "truncated"), (inputs.truncated_jpeg, "truncated"),
    (inputs.svg, "unsupported"), (lambda: inputs.iso_media(b"heic"), "unsupported"),
    (inputs.pdf, "unsupported"), (inputs.ico, "unsupported"),
    (inputs.jpeg_plus_zip, "polyglot"), (inputs.gif_with_script, "polyglot"),
    (lambda: b"", "empty"), (lambda: b"plain text", "not_an_image"),
])
def test_probe_refuses_each_file(build: Any, code: str) -> None:
    with pytest.raises(ImageError) as info:
        probe(build(), 40_000_000, 10 * 2**20)
    assert info.value.code == code and len(str(info.value)) < 300


@pytest.mark.parametrize("build", [inputs.small_png, inputs.small_jpeg])
def test_probe_passes_ordinary_photos(build: Any) -> None:
    header = probe(build(), 40_000_000, 10 * 2**20)
    assert (header.width, header.height) == (64, 64)
