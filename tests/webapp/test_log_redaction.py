"""No secret in any log line: the API key, AWS secrets, request signatures and presigned
URLs are masked in every record, shown on the logs of a real gunicorn serving real
requests (its access log told to print the very headers that carry them)."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import pytest
import requests
from PIL import Image

from config.redaction import MASK, install, redact, secrets_in
from deploy.embedded_aws import stop_process
from tests.webapp.fixtures import API_KEY
from tests.webapp.stack import WebStack, start_gunicorn

SIGNATURE = "9f2c" * 16
CREDENTIAL = "AKIAFACEFLEETEXAMPLE/20261201/us-east-1/s3/aws4_request"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFACEFLEETKEY"
PRESIGNED = ("http://127.0.0.1:5055/in/photo.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             f"&X-Amz-Credential={CREDENTIAL}&X-Amz-Date=20261201T000000Z"
             f"&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}")


@pytest.mark.parametrize("line", [
    f"GET {PRESIGNED} 200",
    "Sending http request: <AWSPreparedRequest headers={'Authorization': "
    f"b'AWS4-HMAC-SHA256 Credential={CREDENTIAL}, SignedHeaders=host, "
    f"Signature={SIGNATURE}'}}>",
    f"headers: X-API-Key: {API_KEY}",
    f"broker sqs://facefleet:{AWS_SECRET}@127.0.0.1:5055/",
    f"the key is {API_KEY} and the secret {AWS_SECRET}",
    f"GET /s3?Signature={SIGNATURE}&AWSAccessKeyId=AKIAFACEFLEETEXAMPLE",
])
def test_redact_masks_every_form(line: str) -> None:
    out = redact(line, {API_KEY, AWS_SECRET})
    for secret in (SIGNATURE, CREDENTIAL, API_KEY, AWS_SECRET, "AKIAFACEFLEETEXAMPLE"):
        assert secret not in out, out
    assert MASK in out


def test_redact_leaves_ordinary_lines_alone() -> None:
    line = "request 8bf8 done in 0.42 s: label=Paul (s3://in/8bf8/photo.jpg)"
    assert redact(line, {API_KEY}) == line


def test_secrets_in_reads_the_secret_variables_only() -> None:
    env = {"FACEFLEET_API_KEY": "k" * 8, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
           "FACEFLEET_QUEUE": "requests", "AWS_SESSION_TOKEN": ""}
    assert secrets_in(env) == {"k" * 8, AWS_SECRET}


def test_records_and_tracebacks_are_redacted_in_process() -> None:
    install([API_KEY])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("facefleet.test.redaction")
    log.addHandler(handler)
    try:
        log.warning("fetching %s with key %s", PRESIGNED, API_KEY)
        try:
            raise RuntimeError(f"GET failed: {PRESIGNED}")
        except RuntimeError:
            log.exception("download failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "RuntimeError" in text and "X-Amz-Signature=" in text
    assert SIGNATURE not in text and API_KEY not in text and CREDENTIAL not in text


def test_gunicorn_logs_of_real_requests_hold_no_secret(web_stack: WebStack,
                                                       tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    access_format = ('%(h)s "%(r)s" %(s)s key=%({x-api-key}i)s '
                     'auth=%({authorization}i)s')
    proc, url = start_gunicorn(web_stack.settings, log, {
        "GUNICORN_CMD_ARGS": f"--access-logfile - --log-level debug "
                             f"--access-logformat '{access_format}'",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET})
    try:
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (20, 90, 200)).save(buf, "PNG")
        r = requests.post(url + "/api/v1/identities/Nobody/images", timeout=180,
                          files={"image": ("sky.png", buf.getvalue())},
                          headers={"X-API-Key": API_KEY})
        assert r.status_code == 400, r.text  # a real enrolment on a worker: no face
        query = PRESIGNED.split("?", 1)[1]
        assert requests.get(f"{url}/api/v1/fleet?{query}", timeout=30).status_code == 200
        assert requests.get(url + "/api/v1/dashboard", auth=("ops", API_KEY),
                            timeout=30).status_code == 200
    finally:
        stop_process(proc, timeout=20)
    text = log.read_text()
    # The lines are there...
    assert '"POST /api/v1/identities/Nobody/images HTTP/1.1" 400' in text
    assert "GET /api/v1/fleet?X-Amz-Algorithm=AWS4-HMAC-SHA256" in text
    assert text.count(MASK) >= 4
    # ... without what they would have carried.
    basic = base64.b64encode(f"ops:{API_KEY}".encode()).decode()
    for secret in (API_KEY, SIGNATURE, CREDENTIAL, AWS_SECRET, basic):
        assert secret not in text, secret
