"""Pure naming rules of the SQS+SNS broadcast transport (no I/O).

Celery names its broadcast endpoints after AMQP conventions:

- the remote-control mailbox exchange ``<ns>.pidbox`` (fanout) and one listener queue
  per worker, ``<hostname>.<ns>.pidbox``;
- the reply exchange ``reply.<ns>.pidbox`` (direct) and one reply queue per caller and
  call, ``<oid>.reply.<ns>.pidbox`` (``oid`` is a uuid that changes with every call);
- the event exchange ``celeryev`` (topic) and one queue per event listener,
  ``celeryev.<uuid>``.

SQS queue names allow ``[A-Za-z0-9_-]`` and 80 characters, so the physical queues this
transport owns get names of their own: ``<prefix><kind>-<slug>-<token>``. The token is
random per process incarnation, so a listener that comes back never meets the queue
of its previous life (stale broadcasts; AWS also refuses to re-create a queue name
within 60 s of deleting it).
"""

from __future__ import annotations

import re
import secrets

#: SQS limit on queue names.
MAX_QUEUE_NAME = 80
#: Kinds of monitoring queue, as they appear in physical names and tags.
KIND_LISTENER = "ls"
KIND_REPLY = "rp"

_ILLEGAL = re.compile(r"[^A-Za-z0-9_-]")
_REPLY_QUEUE = re.compile(r"^(?P<oid>[0-9a-fA-F-]{36})\.(?P<exchange>reply\..+\.pidbox)$")


def sanitize(name: str) -> str:
    """``name`` with every character SQS refuses replaced (``.`` → ``-``, others → ``_``)."""
    return _ILLEGAL.sub("_", name.replace(".", "-"))


def physical_name(prefix: str, kind: str, logical: str, token: str | None = None) -> str:
    """The SQS name of a monitoring queue: ``<prefix><kind>-<slug>-<token>`` (≤ 80 chars).

    ``slug`` is the sanitised logical name, cut to fit; it is only there for people
    reading a queue list. ``token`` (8 hex digits, random unless given) makes it unique.
    """
    token = token or secrets.token_hex(4)
    head = f"{sanitize(prefix)}{kind}-"
    room = MAX_QUEUE_NAME - len(head) - len(token) - 1
    if room < 1:
        raise ValueError(f"monitor queue prefix {prefix!r} is too long for SQS names")
    slug = sanitize(logical)[:room].strip("-_") or "q"
    return f"{head}{slug}-{token}"


def is_monitor_queue(name: str, prefix: str) -> bool:
    """True when ``name`` is the physical name of a queue this transport owns."""
    head = sanitize(prefix)
    return name.startswith((f"{head}{KIND_LISTENER}-", f"{head}{KIND_REPLY}-"))


def is_reply_exchange(exchange: str | None) -> bool:
    """True for Celery's remote-control reply exchange ``reply.<ns>.pidbox``."""
    return exchange is not None and exchange.startswith("reply.") and \
        exchange.endswith(".pidbox")


def is_mailbox_exchange(exchange: str | None) -> bool:
    """True for Celery's remote-control broadcast exchange ``<ns>.pidbox``."""
    return exchange is not None and exchange.endswith(".pidbox") and \
        not is_reply_exchange(exchange)


def is_reply_queue(logical: str) -> bool:
    """True for a per-call reply queue ``<oid>.reply.<ns>.pidbox``."""
    return _REPLY_QUEUE.match(logical) is not None


def reply_queue_name(routing_key: str, exchange: str) -> str:
    """The logical reply queue kombu's Mailbox declares for ``reply_to``."""
    return f"{routing_key}.{exchange}"


def topic_pattern(binding_key: str) -> re.Pattern[str]:
    """AMQP topic binding key → regex (``*`` one word, ``#`` zero or more words)."""
    if binding_key in ("#", ""):
        return re.compile(r".*")
    parts = []
    for word in binding_key.split("."):
        if word == "#":
            parts.append(r".*")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    pattern = r"\.".join(parts).replace(r".*\.", r"(?:.*\.)?").replace(r"\..*", r"(?:\..*)?")
    return re.compile(f"^{pattern}$")


def topic_matches(binding_keys: list[str], routing_key: str) -> bool:
    """True when ``routing_key`` matches any of the topic ``binding_keys``."""
    return any(topic_pattern(key).match(routing_key or "") for key in binding_keys)
