"""Least privilege, checked: every AWS call a process made against its role's policy.

The embedded AWS endpoint can log every request it answers (``python -m
deploy.moto_server --call-log FILE``): who signed it (the access key id, one per
process role in the end-to-end tests: ``FACEFLEET_EMBEDDED_ACCESS_KEY``), the IAM
action it needs and the resource it touches. :func:`describe_request` turns one HTTP
request into that :class:`Call` (pure); :func:`audit` checks the calls of each role
against that role's policy document as Terraform renders it, and lists what the policy
grants that no recorded call needed.

Evaluation is moto's own IAM policy matcher (``moto.iam.access_control.IAMPolicy``),
with two documented simplifications: conditions are not evaluated (a statement's
conditions only narrow it; the end-to-end test passes the tags and templates the
conditions expect), and EC2 calls are checked by action only (one RunInstances touches
an instance, volumes, interfaces, the template, the subnet and security groups, which
EC2 authorises one by one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.responses import ACTION_MAP as S3_ACTIONS

#: moto's account: the account part of every ARN it hands out.
ACCOUNT = "123456789012"
#: API operations that IAM authorises as another action (a batch as its single call).
IAM_ACTION_OF = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sns:PublishBatch": "sns:Publish",
}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/")


@dataclass(frozen=True)
class Call:
    """One AWS call: who made it (access key id), the IAM action, the resource ARN."""

    key: str
    action: str
    resource: str

    def to_json(self) -> str:
        """One line of the call log."""
        return json.dumps({"key": self.key, "action": self.action,
                           "resource": self.resource})


def describe_request(method: str, url: str, headers: Mapping[str, str],
                     body: bytes) -> Call | None:
    """The Call an HTTP request to the endpoint makes; None for an unsigned request
    (moto's own API, health checks)."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    signed = _CREDENTIAL.search(headers.get("Authorization", "")) or _CREDENTIAL.search(
        "Credential=" + query.get("X-Amz-Credential", [""])[0])
    if signed is None:
        return None
    key, region, service = signed.group(1), signed.group(2), signed.group(3)
    path = unquote(urlsplit(url).path)
    if service == "s3":
        return Call(key, *_s3(method, path, query))
    params = _params(headers, body, query)
    action = params.pop("Action", "")
    iam_action = f"{service}:{action}"
    return Call(key, IAM_ACTION_OF.get(iam_action, iam_action),
                _resource(service, region, action, params, path))


def _s3(method: str, path: str, query: Mapping[str, list[str]]) -> tuple[str, str]:
    bucket, _, key = path.lstrip("/").partition("/")
    kind = "KEY" if key else "BUCKET"
    by_query = S3_ACTIONS[kind].get(method, {})
    action = by_query.get("DEFAULT", method)
    for name, mapped in by_query.items():
        if name != "DEFAULT" and name in query:
            action = mapped
            break
    resource = f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}"
    return f"s3:{action}", resource


def _params(headers: Mapping[str, str], body: bytes, query: Mapping[str, list[str]]
            ) -> dict[str, Any]:
    """The request's parameters, whichever protocol carried them (JSON or query)."""
    target = headers.get("X-Amz-Target", "")
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return {**(params if isinstance(params, dict) else {}),
                "Action": target.rsplit(".", 1)[-1]}
    form = parse_qs(body.decode(errors="replace"), keep_blank_values=True) if body else {}
    merged = {**query, **form}
    return {name: values[0] for name, values in merged.items() if values}


def _resource(service: str, region: str, action: str, params: Mapping[str, Any],
              path: str) -> str:
    if service == "sqs":
        name = str(params.get("QueueName") or "")
        url = str(params.get("QueueUrl") or "")
        if not name and url:
            name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        if not name and path.count("/") >= 2:
            name = path.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{region}:{ACCOUNT}:{name}" if name else "*"
    if service == "sns":
        if action == "CreateTopic":
            return f"arn:aws:sns:{region}:{ACCOUNT}:{params.get('Name', '')}"
        arn = str(params.get("TopicArn") or "")
        if not arn and params.get("SubscriptionArn"):
            arn = str(params["SubscriptionArn"]).rsplit(":", 1)[0]  # its topic
        return arn or "*"
    return "*"


def read_calls(path: Path) -> list[Call]:
    """The calls of a call log (one JSON object per line)."""
    calls = []
    for line in path.read_text().splitlines():
        if line.strip():
            doc = json.loads(line)
            calls.append(Call(doc["key"], doc["action"], doc["resource"]))
    return calls


@dataclass
class RoleAudit:
    """One role: the calls its policy refuses, and the granted actions no call used."""

    role: str
    calls: int = 0
    denied: list[Call] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def audit(calls: Iterable[Call], policies: Mapping[str, str | Mapping[str, Any]],
          keys: Mapping[str, str]) -> dict[str, RoleAudit]:
    """Check the calls of each role (``keys``: access key id → role) against the
    role's policy document (JSON text or dict)."""
    documents = {role: json.loads(doc) if isinstance(doc, str) else dict(doc)
                 for role, doc in policies.items()}
    matchers = {role: IAMPolicy(json.dumps(_without_conditions(doc)))
                for role, doc in documents.items()}
    results = {role: RoleAudit(role) for role in documents}
    used: dict[str, set[str]] = {role: set() for role in documents}
    for call in calls:
        role = keys.get(call.key)
        if role is None or role not in matchers:
            continue
        results[role].calls += 1
        used[role].add(call.action)
        resource = "*" if call.action.startswith("ec2:") else call.resource
        allowed = matchers[role].is_action_permitted(call.action, resource)
        if allowed != PermissionResult.PERMITTED and not (
                call.action.startswith("ec2:") and _grants(documents[role], call.action)):
            results[role].denied.append(call)
    for role, doc in documents.items():
        results[role].unused = sorted(a for a in granted_actions(doc)
                                      if not any(_matches(a, u) for u in used[role]))
    return results


def granted_actions(document: Mapping[str, Any]) -> set[str]:
    """The action patterns a policy allows."""
    actions: set[str] = set()
    for statement in _statements(document):
        if statement.get("Effect") == "Allow":
            value = statement.get("Action", [])
            actions.update([value] if isinstance(value, str) else value)
    return actions


def _grants(document: Mapping[str, Any], action: str) -> bool:
    return any(_matches(a, action) for a in granted_actions(document))


def _matches(pattern: str, action: str) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", ".*") + "$"
    return re.match(regex, action, flags=re.IGNORECASE) is not None


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _without_conditions(document: Mapping[str, Any]) -> dict[str, Any]:
    return {**document, "Statement": [{k: v for k, v in s.items() if k != "Condition"}
                                      for s in _statements(document)]}


#: Why an action may be granted although no request of the end-to-end run names it.
_IMPLIED = {
    "sns:TagResource": "implied by CreateTopic with tags (kombu tags the topics it declares)",
    "sqs:TagQueue": "implied by CreateQueue with tags; also the last-seen tag, refreshed "
                    "every FACEFLEET_LISTENER_REFRESH (120 s) by the queue's owner",
    "sqs:GetQueueUrl": "on AWS the request queue's URL is looked up once "
                       "(config.celeryconfig.queue_url); an embedded endpoint's is known",
    "s3:ListBucket": "makes S3 answer 404 rather than 403 for a missing key, which the code "
                     "reads as 'not there yet'; moto answers 404 regardless",
}
_SWEEP = ("the sweep of dead processes' monitoring queues and subscriptions, every "
          "FACEFLEET_MONITOR_SWEEP_INTERVAL (600 s)")

#: Actions a role is granted that the end-to-end run does not exercise, and why each is
#: still needed (the audit refuses any other unused grant): role → action → why.
UNEXERCISED: dict[str, dict[str, str]] = {
    "web": {**{a: _IMPLIED[a] for a in ("sns:TagResource", "sqs:TagQueue",
                                         "sqs:GetQueueUrl", "s3:ListBucket")},
            "sqs:ListQueueTags": _SWEEP + "; the reaping of stale reply queues",
            "sns:ListSubscriptionsByTopic": _SWEEP},
    "worker": {**{a: _IMPLIED[a] for a in ("sns:TagResource", "sqs:TagQueue",
                                            "sqs:GetQueueUrl", "s3:ListBucket")},
               "sqs:ChangeMessageVisibility": "releasing the message of a task whose "
                                              "process died or timed out "
                                              "(tasks.lifecycle)",
               "sqs:ListQueues": _SWEEP, "sqs:ListQueueTags": _SWEEP,
               "sns:ListSubscriptionsByTopic": _SWEEP},
    "controller": {**{a: _IMPLIED[a] for a in ("sns:TagResource", "sqs:TagQueue",
                                                "sqs:GetQueueUrl")},
                   "iam:PassRole": "implied by RunInstances with the template's instance "
                                   "profile (authorised, not requested)",
                   "s3:GetObject": "the install downloads the deployed release (every role)",
                   "sqs:DeleteMessage": "deleting the idle probe's answers, read only on a "
                                        "partial scale-in",
                   "sqs:ListQueues": _SWEEP, "sqs:ListQueueTags": _SWEEP,
                   "sns:ListSubscriptionsByTopic": _SWEEP, "sns:Unsubscribe": _SWEEP},
}
#: parliament findings above LOW that are understood: (issue, action) → why.
EXPLAINED_FINDINGS: dict[tuple[str, str], str] = {
    ("RESOURCE_MISMATCH", "ec2:RunInstances"):
        "RunInstances is granted in four statements, each with the conditions of its own "
        "resource types (the instance: template, type and tags; volumes and interfaces: "
        "the template; the template, AMI and security group; the subnet); parliament "
        "checks each statement alone for every resource type RunInstances touches",
}
