"""Settings shared by every facefleet process: the AWS endpoint and resource names,
recognition and serving knobs.

Defaults point at the embedded AWS (moto's server on a fixed loopback port), so that
``celery -A tasks inspect ping`` or ``python -m recognition ...`` work from another
terminal with no setup. For real AWS set ``FACEFLEET_AWS_ENDPOINT=aws``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from config.env import Invalid, dump, load, setting

EMBEDDED_ENDPOINT = "http://127.0.0.1:5055"
DEFAULT_CACHE = Path("~/.cache/facefleet").expanduser()
# moto accepts any credentials; real AWS mode never uses these. The access key id is a
# setting (FACEFLEET_EMBEDDED_ACCESS_KEY): distinct ones tell processes apart.
EMBEDDED_CREDENTIALS: Final = {"aws_access_key_id": "testing",
                                "aws_secret_access_key": "testing"}
#: What ``FACEFLEET_AWS_ENDPOINT`` may say to mean real AWS.
AWS_WORDS = frozenset({"aws", "none"})
#: Detections below this probability are not listed. From ``python -m bench.detection``
#: (docs/benchmarks.md): 0.05 under the weakest true face of photos seen as they are,
#: resized, recompressed and in group composites (1 observation in 500 spared), rounded
#: down to 0.01 (a coarser grid only adds slack the margin already gives). It stays at
#: or below the pipeline's PRIMARY_MIN_PROBABILITY, so it never changes which face is a
#: photo's primary one (its label).
REPORT_MIN_PROBABILITY = 0.83
#: Long side, in pixels, of the copy a larger image is detected on: the detector's cost
#: per photo, whatever its resolution. MTCNN searches faces down to 20 px in that copy
#: and finds every one of 28 px or more (20 px over its pyramid step 0.709) as it does
#: in the full image, so on an image of long side L the documented minimum face is
#: 28.2 * L / DETECT_MAX_SIDE pixels of box width: 56 px on a 1920 px photo, 118 px on
#: a 4032 px (12 MP) one (most faces between 20 and 28 px in the copy are found too).
#: From ``python -m bench.groups`` (docs/benchmarks.md): a 1920 px group photo in at
#: most 0.5 s on one core with a margin for a busy machine, and no face at or above
#: the minimum lost against detecting the full image. Smaller images, the 5-celebrity
#: photos (at most 360 px) and the 64 x 64 reference crops among them, are detected as
#: they are.
DETECT_MAX_SIDE = 960
#: The smallest FACEFLEET_DETECT_MAX_SIDE accepted: above every 5-celebrity photo, which
#: the accuracy figures rest on, so none of them is ever downscaled.
DETECT_MAX_SIDE_MIN = 400


def parse_endpoint(raw: str) -> str | None:
    """An http(s) endpoint URL without a trailing slash, or None for real AWS."""
    if raw.lower() in AWS_WORDS:
        return None
    if raw.startswith(("http://", "https://")):
        return raw.rstrip("/")
    raise Invalid("must be an http(s) URL or 'aws'")


DEVICES = ("auto", "cpu", "cuda")


def parse_device(raw: str) -> str:
    """Where the models run: ``auto`` (a GPU when torch sees one), ``cpu`` or ``cuda``."""
    device = raw.lower()
    if device not in DEVICES:
        raise Invalid("must be auto, cpu or cuda")
    return device


def parse_key(raw: str) -> str:
    """An object key: leading slashes dropped (S3 keys have none)."""
    key = raw.lstrip("/")
    if not key:
        raise Invalid("is not an object key")
    return key


@dataclass(frozen=True)
class Settings:
    """Settings every process shares: the AWS endpoint, resource names, recognition."""

    aws_endpoint: str | None = setting(
        "FACEFLEET_AWS_ENDPOINT", EMBEDDED_ENDPOINT,
        "AWS endpoint URL (the embedded moto server); `aws` means real AWS",
        parse=parse_endpoint, write=lambda v: v or "aws")
    region: str = setting("AWS_DEFAULT_REGION", "us-east-1", "AWS region")
    input_bucket: str = setting("FACEFLEET_INPUT_BUCKET", "facefleet-input",
                                "bucket of uploaded images")
    output_bucket: str = setting("FACEFLEET_OUTPUT_BUCKET", "facefleet-output",
                                 "bucket of label objects, Celery results and fleet state")
    model_bucket: str = setting("FACEFLEET_MODEL_BUCKET", "facefleet-models",
                                "bucket of the weights and the gallery (versioned)")
    queue: str = setting("FACEFLEET_QUEUE", "facefleet-requests",
                         "the Celery request queue (SQS)")
    dead_letter_queue: str = setting("FACEFLEET_DLQ", "facefleet-requests-dlq",
                                     "its dead-letter queue")
    max_receives: int = setting("FACEFLEET_MAX_RECEIVES", 3,
                                "deliveries of a message before SQS moves it to the DLQ",
                                minimum=1, maximum=1000)
    cache_dir: Path = setting("FACEFLEET_CACHE", DEFAULT_CACHE,
                              "local cache of weights and downloads",
                              default_doc="`~/.cache/facefleet`")
    weights: str = setting("FACEFLEET_WEIGHTS", "facenet-msceleb-128",
                           "embedder weights: registry name, local path or `s3://` URI")
    gallery: str = setting(
        "FACEFLEET_GALLERY", "s3://facefleet-models/gallery.json",
        "gallery location: a local file or `s3://bucket/key`",
        derive=lambda seen: f"s3://{seen['model_bucket']}/gallery.json",
        default_doc="`s3://<model bucket>/gallery.json`")
    threshold: float | None = setting(
        "FACEFLEET_THRESHOLD", None,
        "L2 distance above which a face is `Unknown` (unset: the weights' calibrated value)",
        minimum=0.0, maximum=4.0)
    min_face_probability: float = setting(
        "FACEFLEET_MIN_FACE_PROBABILITY", REPORT_MIN_PROBABILITY,
        "detection probability below which a face is not listed (an image's best detection "
        "is kept when none reaches it)", minimum=0.0, maximum=1.0)
    detect_max_side: int = setting(
        "FACEFLEET_DETECT_MAX_SIDE", DETECT_MAX_SIDE,
        "long side (pixels) of the copy a larger image is detected on (crops come from "
        "the full image); faces of 28 px or more in that copy are found as well as in the "
        "full image, i.e. of 28.2 x the image's long side / this (56 px on a 1920 px "
        "photo, 118 px on a 4032 px one); higher finds smaller faces, slower",
        minimum=DETECT_MAX_SIDE_MIN)
    device: str = setting(
        "FACEFLEET_DEVICE", "auto",
        "where the models run: `auto` (the GPU when torch sees one), `cpu` or `cuda`",
        parse=parse_device)
    max_pixels: int = setting("FACEFLEET_MAX_PIXELS", 40_000_000,
                              "largest decoded image in pixels (decompression bombs)",
                              minimum=1)
    max_upload_bytes: int = setting("FACEFLEET_MAX_UPLOAD_BYTES", 10 * 1024 * 1024,
                                    "largest accepted upload in bytes", minimum=1)
    torch_threads: int = setting("FACEFLEET_TORCH_THREADS", 1,
                                 "torch intra-op threads per recognizer process",
                                 minimum=1, maximum=256)
    api_key: str | None = setting("FACEFLEET_API_KEY", None,
                                  "when set, identity writes need the header `X-API-Key`")
    result_timeout: float = setting(
        "FACEFLEET_RESULT_TIMEOUT", 30.0,
        "seconds the web tier waits for a result at least; longer while the queue makes "
        "progress (up to FACEFLEET_MAX_WAIT), then 504 with the result's Location",
        minimum=0.1)
    embedded_access_key: str = setting(
        "FACEFLEET_EMBEDDED_ACCESS_KEY", EMBEDDED_CREDENTIALS["aws_access_key_id"],
        "access key id the processes sign with on an embedded endpoint (moto takes any; "
        "one per process role tells them apart in its call log); unused on AWS")
    fleet_state_key: str = setting(
        "FACEFLEET_FLEET_STATE_KEY", "fleet/state.json",
        "key in the output bucket where the autoscaler publishes its state", parse=parse_key)

    @property
    def embedded(self) -> bool:
        """True when talking to an explicit endpoint (moto) rather than real AWS."""
        return self.aws_endpoint is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        return load(cls, env)

    def to_env(self) -> dict[str, str]:
        """The variables that make ``Settings.from_env()`` return these settings (for the
        processes a parent starts)."""
        return dump(self)
