"""Shared fixtures: a real moto server over HTTP, and settings pointing at it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.embedded_aws import free_port, start_moto, stop_process

# The web tier's stack fixtures (one real stack per session), for every test package.
pytest_plugins = ["tests.webapp.fixtures"]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CSE546 = SHARED_DATA / "cse546"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto server started for this test session on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = start_moto(port, log_path=log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    """Settings aimed at the session's moto server, with names unique to this test."""
    suffix = uuid.uuid4().hex[:8]
    base = Settings.from_env({"FACEFLEET_AWS_ENDPOINT": moto_endpoint,
                              "FACEFLEET_CACHE": os.environ.get("FACEFLEET_CACHE", "")})
    return replace(
        base,
        input_bucket=f"in-{suffix}",
        output_bucket=f"out-{suffix}",
        model_bucket=f"models-{suffix}",
        queue=f"requests-{suffix}",
        dead_letter_queue=f"requests-{suffix}-dlq",
        gallery=f"s3://models-{suffix}/gallery.json",
    )


@pytest.fixture
def cse546_dir() -> Path:
    """The CSE546 reference workload; skips with the reason when ../shared is absent."""
    if not CSE546.is_dir():
        pytest.skip(f"reference workload not found at {CSE546} (../shared is absent)")
    return CSE546
