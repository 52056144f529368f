"""Raw task messages, as kombu's SQS transport frames them (SQS body = base64 of a JSON
envelope whose ``body`` is the base64 of the serialised task), so that a test can put
on the queue what no Celery client would send: a pickle, YAML, a body that is not JSON,
a task name the worker does not know, or plain text that is no envelope at all.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any


def celery_body(args: list[Any]) -> bytes:
    """Celery protocol 2's JSON body: ``[args, kwargs, embed]``."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return json.dumps([args, {}, embed]).encode()


def envelope(queue: str, task: str, task_id: str, body: bytes,
             content_type: str = "application/json") -> str:
    """The SQS message body kombu would send for ``task`` with this serialised ``body``."""
    headers = {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
               "expires": None, "group": None, "group_index": None, "retries": 0,
               "timelimit": [None, None], "root_id": task_id, "parent_id": None,
               "argsrepr": "", "kwargsrepr": "", "origin": "hostile@test",
               "ignore_result": False}
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "binary" if "json" not in content_type else "utf-8",
        "content-type": content_type,
        "headers": headers,
        "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "priority": 0, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4())},
    }
    return base64.b64encode(json.dumps(message).encode()).decode()


def task_id_of(sqs_body: str) -> str | None:
    """The task id inside an SQS body built by kombu (None for a non-envelope)."""
    try:
        return str(json.loads(base64.b64decode(sqs_body))["headers"]["id"])
    except (ValueError, KeyError, TypeError):
        return None
