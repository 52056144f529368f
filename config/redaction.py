"""Keep secrets out of log lines: the API key, AWS secret keys and session tokens, request
signatures (presigned URLs' ``X-Amz-Signature``, ``Authorization`` headers) and passwords
in URLs.

:func:`install` wraps the process's log-record factory, so every record of every logger
(gunicorn's access and error logs, botocore's debug lines, ours) is redacted once, when
it is made, whatever handler later writes it. A filter on handlers would miss the
handlers that gunicorn, Celery or a library add after startup.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "[redacted]"
#: Variables whose values are secrets wherever they appear.
SECRET_VARIABLES = ("FACEFLEET_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_SECURITY_TOKEN")
#: A value shorter than this is not masked by value (it would mask ordinary words); the
#: patterns below still catch it where it appears as a header or parameter.
MIN_SECRET_LENGTH = 4

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Presigned URLs (SigV4 and SigV2) and any other query parameter that signs or
    # authorises a request: keep the name, mask the value.
    (re.compile(r"(?i)\b((?:X-Amz-)?(?:Signature|Credential|Security-Token)|"
                r"AWSAccessKeyId|x-api-key|api_key|apikey|access_token)=[^&\s\"'<>,]+"),
     rf"\1={MASK}"),
    # Credentials of an Authorization header wherever a log format puts its value
    # (case-sensitive, as the schemes are written, so prose like "basic settings" stays).
    (re.compile(r"\b(Basic|Bearer|Digest)\s+[A-Za-z0-9+/=._~-]{6,}"), rf"\1 {MASK}"),
    # Header lines and reprs: "Authorization: ...", 'X-API-Key': b'...', etc.
    (re.compile(r"(?i)(\b(?:authorization|x-api-key|x-amz-security-token|cookie)"
                r"[\"']?\s*[:=]\s*b?[\"']?)[^\"'\r\n,}]+"),
     rf"\1{MASK}"),
    # A password in a URL's user info: scheme://user:secret@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{MASK}@"),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value and signature-like pattern masked."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial masks
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def secrets_in(env: Mapping[str, str]) -> set[str]:
    """The values of :data:`SECRET_VARIABLES` that ``env`` sets."""
    return {env[name].strip() for name in SECRET_VARIABLES if env.get(name, "").strip()}


def install(extra: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
    """Redact every log record made in this process from now on (idempotent).

    Masks the values of :data:`SECRET_VARIABLES` in ``env`` (default: the process
    environment) plus ``extra`` (secrets that came from elsewhere, e.g. settings built
    in code), and the patterns of :func:`redact`.
    """
    global _installed
    with _lock:
        _secrets.update(secrets_in(os.environ if env is None else env))
        _secrets.update(s for s in extra if s)
        if _installed:
            return
        _installed = True
        logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))


def _redacting(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        secrets = tuple(_secrets)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error report
            return record
        # Formatted here, once: the handlers then print the redacted text as it is.
        record.msg, record.args = redact(message, secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                     secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return record

    return factory
