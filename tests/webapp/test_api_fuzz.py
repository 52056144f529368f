"""schemathesis against the live web tier over real HTTP (gunicorn → moto's server → real
Celery workers), driven by the OpenAPI document the server publishes, with every check
schemathesis has but one (see CONFIG): no 5xx, every status code documented, every body,
content type and header as the document says, schema-violating input refused, the key
not ignored, undeclared methods answered 405 with Allow.

It runs schemathesis's own command line (every phase: coverage, fuzzing, stateful),
not its pytest plugin, whose lazy schema loader does not run under pytest 9. Bounded
to fit CI: few examples per operation, fewer on the uploads (a multipart request each,
through validation and, for a real image, the model), deterministic generation.

The API key is sent, so the writes are fuzzed past their guard. That is why the run has
a stack of its own (its buckets, queue, gallery and worker, on the session's moto
server): schemathesis feeds names it read from ``GET /api/v1/identities`` to
``DELETE``, and on the shared stack it removed every identity the other tests had
enrolled. A real photo is enrolled first, so the removal's 200 path is reached too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from deploy.embedded_aws import stop_process
from deploy.provision import provision
from recognition.weights.sdist import celebrity_dataset
from tests.webapp.fixtures import API_KEY, unique_settings
from tests.webapp.stack import start_gunicorn, start_worker, wait_http

#: Examples per operation in the fuzzing phase; the uploads get fewer.
MAX_EXAMPLES = 60
UPLOAD_EXAMPLES = 15
# Every check of schemathesis, but:
# - positive_data_acceptance: an upload's schema cannot say "an image the worker can
#   decode", so schema-valid bytes are rightly refused with 400;
# - negative_data_rejection takes 413 as a rejection too (too many files, too large).
CONFIG = f"""
[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true
database = "none"

[checks.positive_data_acceptance]
enabled = false

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]

[[operations]]
include-operation-id-regex = "^(createRecognition|enrollIdentity)$"
generation.max-examples = {UPLOAD_EXAMPLES}
"""
#: The run's wall-time budget (the stack is already up).
BUDGET_S = 90.0
CLI = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def fuzz_url(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web tier with one worker and resources of its own, one identity enrolled."""
    logs = tmp_path_factory.mktemp("fuzz-stack")
    settings: Settings = unique_settings(moto_endpoint, api_key=API_KEY, result_timeout=60.0)
    provision(settings)
    worker = start_worker(settings, logs / "worker.log", "fuzz")
    try:
        web, url = start_gunicorn(settings, logs / "gunicorn.log")
        try:
            wait_http(url + "/healthz", 30, web)
            photo = sorted((celebrity_dataset(settings.cache_dir) / "train" / "madonna")
                           .glob("*.jpg"))[0]
            r = requests.post(url + "/api/v1/identities/Madonna/images", timeout=180,
                              files={"image": (photo.name, photo.read_bytes())},
                              headers={"X-API-Key": API_KEY})
            assert r.status_code == 201, r.text
            yield url
        finally:
            stop_process(web, timeout=20)
    finally:
        stop_process(worker, timeout=20)


def test_schemathesis_finds_no_failure(fuzz_url: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [str(CLI), "--config-file", str(config), "run", f"{fuzz_url}/api/v1/openapi.json",
           "--header", f"X-API-Key: {API_KEY}", "--request-timeout", "60",
           "--workers", "2", "--no-color", "--suppress-health-check", "all",
           "--report", "junit", "--report-dir", str(tmp_path / "report")]
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * BUDGET_S,
                         cwd=tmp_path)
    elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]
    assert "No issues found" in output or " passed" in output, output[-4000:]
    assert elapsed < BUDGET_S, f"schemathesis took {elapsed:.0f} s (budget {BUDGET_S:.0f} s)"
