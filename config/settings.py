"""Settings shared by every facefleet process: the AWS endpoint and resource names,
recognition and serving knobs.

Defaults point at the embedded AWS (moto's server on a fixed loopback port), so that
``celery -A tasks inspect ping`` or ``python -m recognition ...`` work from another
terminal with no setup. For real AWS set ``FACEFLEET_AWS_ENDPOINT=aws``.

| variable | default | meaning |
| --- | --- | --- |
| FACEFLEET_AWS_ENDPOINT | http://127.0.0.1:5055 | endpoint URL; ``aws`` means real AWS |
| AWS_DEFAULT_REGION | us-east-1 | region |
| FACEFLEET_INPUT_BUCKET | facefleet-input | uploaded images |
| FACEFLEET_OUTPUT_BUCKET | facefleet-output | label objects and Celery results |
| FACEFLEET_MODEL_BUCKET | facefleet-models | weights and the gallery |
| FACEFLEET_QUEUE | facefleet-requests | the Celery request queue (SQS) |
| FACEFLEET_DLQ | facefleet-requests-dlq | its dead-letter queue |
| FACEFLEET_MAX_RECEIVES | 3 | deliveries before a message goes to the DLQ |
| FACEFLEET_CACHE | ~/.cache/facefleet | weights and downloads cache |
| FACEFLEET_WEIGHTS | facenet-msceleb-128 | registry name, local path or ``s3://`` URI |
| FACEFLEET_GALLERY | s3://<model bucket>/gallery.json | gallery location (path or ``s3://``) |
| FACEFLEET_THRESHOLD | the model's calibrated value | L2 distance above which a face is Unknown |
| FACEFLEET_MAX_PIXELS | 40000000 | decoded image pixel cap (decompression bombs) |
| FACEFLEET_MAX_UPLOAD_BYTES | 10485760 | largest accepted upload |
| FACEFLEET_TORCH_THREADS | 1 | intra-op threads per recognizer process |
| FACEFLEET_API_KEY | (unset) | when set, identity writes need ``X-API-Key`` |
| FACEFLEET_RESULT_TIMEOUT | 30 | seconds the web tier waits for a result |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.env import ConfigError, get_float, get_int, get_optional_float, get_str

EMBEDDED_ENDPOINT = "http://127.0.0.1:5055"
DEFAULT_CACHE = Path("~/.cache/facefleet").expanduser()
# moto accepts any credentials; real AWS mode never uses these.
EMBEDDED_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Settings:
    """Typed, validated configuration for one process (see the module docstring)."""

    aws_endpoint: str | None = EMBEDDED_ENDPOINT
    region: str = "us-east-1"
    input_bucket: str = "facefleet-input"
    output_bucket: str = "facefleet-output"
    model_bucket: str = "facefleet-models"
    queue: str = "facefleet-requests"
    dead_letter_queue: str = "facefleet-requests-dlq"
    max_receives: int = 3
    cache_dir: Path = DEFAULT_CACHE
    weights: str = "facenet-msceleb-128"
    gallery: str = "s3://facefleet-models/gallery.json"
    threshold: float | None = None
    max_pixels: int = 40_000_000
    max_upload_bytes: int = 10 * 1024 * 1024
    torch_threads: int = 1
    api_key: str | None = None
    result_timeout: float = 30.0

    @property
    def embedded(self) -> bool:
        """True when talking to an explicit endpoint (moto) rather than real AWS."""
        return self.aws_endpoint is not None

    def boto3_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client(service, **kwargs)``."""
        kwargs = {"region_name": self.region}
        if self.aws_endpoint is not None:
            kwargs["endpoint_url"] = self.aws_endpoint
            kwargs.update(EMBEDDED_CREDENTIALS)
        return kwargs

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        endpoint = get_str(env, "FACEFLEET_AWS_ENDPOINT", EMBEDDED_ENDPOINT)
        if endpoint.lower() in {"aws", "none"}:
            aws_endpoint = None
        elif endpoint.startswith(("http://", "https://")):
            aws_endpoint = endpoint.rstrip("/")
        else:
            raise ConfigError(
                f"FACEFLEET_AWS_ENDPOINT={endpoint!r} must be an http(s) URL or 'aws'"
            )
        model_bucket = get_str(env, "FACEFLEET_MODEL_BUCKET", cls.model_bucket)
        api_key = get_str(env, "FACEFLEET_API_KEY", "") or None
        return cls(
            aws_endpoint=aws_endpoint,
            region=get_str(env, "AWS_DEFAULT_REGION", cls.region),
            input_bucket=get_str(env, "FACEFLEET_INPUT_BUCKET", cls.input_bucket),
            output_bucket=get_str(env, "FACEFLEET_OUTPUT_BUCKET", cls.output_bucket),
            model_bucket=model_bucket,
            queue=get_str(env, "FACEFLEET_QUEUE", cls.queue),
            dead_letter_queue=get_str(env, "FACEFLEET_DLQ", cls.dead_letter_queue),
            max_receives=get_int(env, "FACEFLEET_MAX_RECEIVES", 3, minimum=1, maximum=1000),
            cache_dir=Path(get_str(env, "FACEFLEET_CACHE", "~/.cache/facefleet")).expanduser(),
            weights=get_str(env, "FACEFLEET_WEIGHTS", cls.weights),
            gallery=get_str(env, "FACEFLEET_GALLERY", f"s3://{model_bucket}/gallery.json"),
            threshold=get_optional_float(env, "FACEFLEET_THRESHOLD", minimum=0.0, maximum=4.0),
            max_pixels=get_int(env, "FACEFLEET_MAX_PIXELS", cls.max_pixels, minimum=1),
            max_upload_bytes=get_int(
                env, "FACEFLEET_MAX_UPLOAD_BYTES", cls.max_upload_bytes, minimum=1
            ),
            torch_threads=get_int(env, "FACEFLEET_TORCH_THREADS", 1, minimum=1, maximum=256),
            api_key=api_key,
            result_timeout=get_float(
                env, "FACEFLEET_RESULT_TIMEOUT", cls.result_timeout, minimum=0.1
            ),
        )
