"""``python -m recognition`` end to end in subprocesses (real weights, real moto server)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from config import aws
from config.settings import Settings
from deploy.embedded_aws import free_port
from recognition.weights import ensure_weights
from tests.recognition.conftest import CACHE_DIR

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, from the repository root."""
    full_env = {**os.environ, "FACEFLEET_CACHE": str(CACHE_DIR), **(env or {})}
    return subprocess.run([sys.executable, "-m", "recognition", *args], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=300,
                          check=False)


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


def _photos(celebrities: Path, split: str, name: str, count: int) -> list[str]:
    return [str(p) for p in sorted((celebrities / split / name).iterdir())[:count]]


@pytest.fixture
def odd_files(tmp_path: Path) -> dict[str, Path]:
    """An image with no face, a text file named .jpg, an empty file."""
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (150, 1))
    gradient = tmp_path / "gradient.png"
    Image.fromarray(ramp).save(gradient)
    text = tmp_path / "notes.jpg"
    text.write_text("these are my notes, not a photo\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    return {"gradient": gradient, "text": text, "empty": empty}


def test_weights_prints_path_and_sha256() -> None:
    proc = run_cli("weights")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    info = ensure_weights("facenet-msceleb-128", CACHE_DIR)
    assert f"path: {info.path}" in proc.stdout and f"sha256: {info.sha256}" in proc.stdout


def test_enroll_then_identify_json(tmp_path: Path, celebrities: Path,
                                   odd_files: dict[str, Path]) -> None:
    gallery = str(tmp_path / "gallery.json")
    for name in ("ben_afflek", "madonna"):
        proc = run_cli("enroll", name, *_photos(celebrities, "train", name, 4),
                       "--gallery", gallery)
        _no_traceback(proc)
        assert proc.returncode == 0, proc.stderr
        assert f"enrolled 4 photo(s) of {name}" in proc.stdout
    images = [*_photos(celebrities, "val", "ben_afflek", 1),
              *_photos(celebrities, "val", "madonna", 1),
              *_photos(celebrities, "val", "mindy_kaling", 1),
              str(odd_files["gradient"]), str(odd_files["text"]),
              str(tmp_path / "missing.jpg")]
    proc = run_cli("identify", *images, "--gallery", gallery, "--json")
    _no_traceback(proc)
    assert proc.returncode == 1  # bad images make the run fail, at the end
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["image"] for line in lines] == images
    assert [line.get("label") for line in lines] == [
        "ben_afflek", "madonna", "Unknown", "NoFace", None, None]
    face = lines[0]["faces"][0]
    assert set(face) == {"box", "probability", "identity", "distance"}
    assert len(face["box"]) == 4 and face["identity"] == "ben_afflek"
    assert lines[3]["faces"] == []
    assert "text, not an image" in lines[4]["error"] and lines[4]["code"] == "not_an_image"
    assert "no such file" in lines[5]["error"]
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)


def test_enroll_with_a_bad_photo_enrols_nothing(tmp_path: Path, celebrities: Path,
                                                odd_files: dict[str, Path]) -> None:
    gallery = tmp_path / "gallery.json"
    good = _photos(celebrities, "train", "elton_john", 1)
    proc = run_cli("enroll", "elton", *good, str(odd_files["empty"]), "--gallery", str(gallery))
    _no_traceback(proc)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "empty.jpg" in proc.stderr
    assert "nothing was enrolled" in proc.stderr
    proc = run_cli("enroll", "elton", *good, str(odd_files["gradient"]),
                   "--gallery", str(gallery))
    assert proc.returncode == 1 and "no face found in gradient.png" in proc.stderr
    assert not gallery.exists()
    proc = run_cli("enroll", "bad/name", *good, "--gallery", str(gallery))
    assert proc.returncode == 1 and "invalid identity name" in proc.stderr


def test_default_gallery_on_s3(settings: Settings, celebrities: Path) -> None:
    client = aws.client(settings, "s3")
    client.create_bucket(Bucket=settings.model_bucket)
    env = settings.to_env()
    proc = run_cli("enroll", "Mindy Kaling", *_photos(celebrities, "train", "mindy_kaling", 3),
                   env=env)
    assert proc.returncode == 0, proc.stderr
    assert settings.gallery in proc.stdout
    proc = run_cli("list", env=env)
    assert proc.returncode == 0 and proc.stdout == "Mindy Kaling\t3\n"
    proc = run_cli("identify", *_photos(celebrities, "val", "mindy_kaling", 2), env=env)
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": Mindy Kaling\n") == 2
    assert run_cli("remove", "Mindy Kaling", env=env).returncode == 0
    proc = run_cli("remove", "Mindy Kaling", env=env)
    assert proc.returncode == 1 and "not enrolled" in proc.stderr


def test_unreachable_endpoint_says_what_to_do(celebrities: Path) -> None:
    env = {"FACEFLEET_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}", "FACEFLEET_GALLERY": ""}
    proc = run_cli("identify", *_photos(celebrities, "val", "madonna", 1), env=env)
    _no_traceback(proc)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "make up" in proc.stderr and "--gallery PATH" in proc.stderr


def test_usage_errors_exit_2() -> None:
    proc = run_cli("identify")
    assert proc.returncode == 2 and "IMAGE" in proc.stderr


def test_png_with_alpha_identifies(tmp_path: Path, celebrities: Path) -> None:
    """A real photo saved as RGBA PNG still works through the CLI (no gallery: Unknown)."""
    photo = Image.open(_photos(celebrities, "val", "elton_john", 1)[0]).convert("RGBA")
    path = tmp_path / "elton.png"
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    proc = run_cli("identify", str(path), "--json", "--gallery", str(tmp_path / "none.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "Unknown"
