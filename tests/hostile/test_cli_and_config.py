"""Hostile input at the command line and in the environment: ``python -m recognition``
as a subprocess with bad names, bad files and bad settings. Each is refused with one
``error:`` line naming its cause and exit status 1, before any model is loaded (these
runs take about a second each), never with a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import ConfigError
from config.web import WebSettings
from tests.hostile import inputs

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m recognition ARGS`` with a short timeout (no model is loaded here)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "recognition", *args], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Hostile files on disk."""
    folder = tmp_path_factory.mktemp("hostile-files")
    made = {"bomb.png": inputs.png_claiming(100_000, 100_000), "drawing.svg": inputs.svg(),
            "cut.jpg": inputs.truncated_jpeg(), "polyglot.jpg": inputs.jpeg_plus_zip(),
            "photo.heic": inputs.iso_media(b"heic"), "empty.jpg": b"",
            "ok.png": inputs.small_png()}
    for name, data in made.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in made}


def test_identify_refuses_each_bad_file_with_its_code(files: dict[str, Path]) -> None:
    bad = {"bomb.png": "too_many_pixels", "drawing.svg": "unsupported", "cut.jpg": "truncated",
           "polyglot.jpg": "polyglot", "photo.heic": "unsupported", "empty.jpg": "empty"}
    others = {"/dev/zero": "unreadable", str(files["ok.png"].parent): "not_found",
              "/nonexistent/x.jpg": "not_found"}
    paths = [str(files[name]) for name in bad] + list(others)
    proc = run_cli("identify", *paths, "--json")
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["code"] for line in lines] == [*bad.values(), *others.values()]
    assert "100000x100000" in lines[0]["error"] and "FACEFLEET_MAX_PIXELS" in lines[0]["error"]
    assert len(proc.stderr.strip().splitlines()) == len(paths)


@pytest.mark.parametrize(("name", "fragment"), [
    ("Pa\x07ul", "U+0007"),
    ("P\u0430ul", "U+0430 CYRILLIC SMALL LETTER A"),
    ("Unknown", "labels of unmatched faces"),
    ("NoFace", "labels of unmatched faces"),
    ("a  b", "two spaces in a row"),
    ("x" * 5000, "5000 characters"),
])
def test_enroll_refuses_bad_names(files: dict[str, Path], name: str, fragment: str) -> None:
    proc = run_cli("enroll", name, str(files["ok.png"]), "--gallery", "/nonexistent/g.json")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: invalid identity name") and fragment in proc.stderr
    assert "\x07" not in proc.stderr  # escaped, never echoed raw to the terminal


def test_enroll_refuses_a_bad_photo_before_loading_the_model(files: dict[str, Path]) -> None:
    proc = run_cli("enroll", "Paul", str(files["ok.png"]), str(files["polyglot.jpg"]),
                   "--gallery", "/nonexistent/g.json")
    assert proc.returncode == 1 and "polyglot.jpg" in proc.stderr
    assert "nothing was enrolled" in proc.stderr


@pytest.mark.parametrize(("variable", "value", "fragment"), [
    ("FACEFLEET_MAX_PIXELS", "lots", "FACEFLEET_MAX_PIXELS"),
    ("FACEFLEET_MAX_PIXELS", "-5", "FACEFLEET_MAX_PIXELS"),
    ("FACEFLEET_AWS_ENDPOINT", "ftp://example.com", "FACEFLEET_AWS_ENDPOINT"),
    ("FACEFLEET_DEVICE", "tpu", "FACEFLEET_DEVICE"),
])
def test_bad_settings_are_named(files: dict[str, Path], variable: str, value: str,
                                fragment: str) -> None:
    proc = run_cli("identify", str(files["ok.png"]), env={variable: value})
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    assert fragment in proc.stderr


def test_bad_cli_arguments_are_usage_errors() -> None:
    assert run_cli("identify").returncode == 2  # argparse: IMAGE is required
    proc = run_cli("identify", "x.jpg", "--batch", "0")
    assert proc.returncode == 1 and "--batch must be at least 1" in proc.stderr


@pytest.mark.parametrize(("env", "fragment"), [
    ({"FACEFLEET_WEB_MAX_FILES": "0"}, "FACEFLEET_WEB_MAX_FILES"),
    ({"FACEFLEET_WEB_MAX_FILES": "100000"}, "FACEFLEET_WEB_MAX_FILES"),
    ({"FACEFLEET_WEB_MAX_ENROL_BYTES": "a lot"}, "FACEFLEET_WEB_MAX_ENROL_BYTES"),
    ({"FACEFLEET_WEB_BIND": "8000"}, "FACEFLEET_WEB_BIND"),
])
def test_bad_web_settings_are_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        WebSettings.from_env(env)
    assert fragment in str(info.value)
