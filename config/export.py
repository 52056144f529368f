"""Turn Settings back into environment variables, for the processes a parent starts.

Child processes (Celery workers, gunicorn) read their configuration from the
environment only; this is the inverse of :meth:`config.settings.Settings.from_env`,
so a parent can hand a child exactly the settings it holds.
"""

from __future__ import annotations

from config.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make ``Settings.from_env()`` return ``settings``."""
    env = {
        "FACEFLEET_AWS_ENDPOINT": settings.aws_endpoint or "aws",
        "AWS_DEFAULT_REGION": settings.region,
        "FACEFLEET_INPUT_BUCKET": settings.input_bucket,
        "FACEFLEET_OUTPUT_BUCKET": settings.output_bucket,
        "FACEFLEET_MODEL_BUCKET": settings.model_bucket,
        "FACEFLEET_QUEUE": settings.queue,
        "FACEFLEET_DLQ": settings.dead_letter_queue,
        "FACEFLEET_MAX_RECEIVES": str(settings.max_receives),
        "FACEFLEET_CACHE": str(settings.cache_dir),
        "FACEFLEET_WEIGHTS": settings.weights,
        "FACEFLEET_GALLERY": settings.gallery,
        "FACEFLEET_MAX_PIXELS": str(settings.max_pixels),
        "FACEFLEET_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
        "FACEFLEET_TORCH_THREADS": str(settings.torch_threads),
        "FACEFLEET_RESULT_TIMEOUT": repr(settings.result_timeout),
        # Empty means unset to the readers in config.env.
        "FACEFLEET_THRESHOLD": "" if settings.threshold is None else repr(settings.threshold),
        "FACEFLEET_API_KEY": settings.api_key or "",
    }
    return env
