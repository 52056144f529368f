"""EC2 fleet back end (boto3): AWS, or any EC2 endpoint such as the embedded moto.

Bounding the fleet: every instance sits in a slot 1..max (tags ``Name=<prefix><n>``
and ``facefleet:slot=<n>``), a launch takes the lowest free slots read from EC2 at
that moment, and the ClientToken of a launch is derived from (role, slot, generation).
Two launches of the same slot — a retry after a lost response, a controller restarted
mid-launch, two controllers racing — carry the same token, and EC2 runs the instance
once. Endpoints that ignore ClientToken (moto does) are covered by a check after each
launch: a slot with two live instances keeps the older one and terminates the rest,
so the count converges to at most max.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from autoscaler.errors import FleetError
from autoscaler.fleet import SLOT_STATES, Instance, free_slots
from config.autoscaler import ORIGIN_TAG, ROLE_TAG, SLOT_TAG, AutoscalerSettings
from config.aws import CALL_ERRORS

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client
    from types_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef

_ALL_STATES = ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
_GENERATION_TAG = "facefleet:generation"
_TEMPLATE_ID = re.compile(r"^lt-[0-9a-f]{8,17}$")


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def parse_instance(raw: InstanceTypeDef, name_prefix: str) -> Instance | None:
    """Build an Instance from one DescribeInstances entry; None if it has no slot."""
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    name = tags.get("Name", "")
    slot_text = tags.get(SLOT_TAG) or (name[len(name_prefix):] if name.startswith(name_prefix)
                                       else "")
    try:
        slot = int(slot_text)
    except ValueError:
        return None
    return Instance(id=raw["InstanceId"], name=name or f"{name_prefix}{slot}", slot=slot,
                    state=raw["State"]["Name"], since=_epoch(raw["LaunchTime"]),
                    origin=tags.get(ORIGIN_TAG, "launch"))


class Ec2Fleet:
    """The Fleet Protocol on EC2 for instances tagged ``facefleet:role=<role>``."""

    def __init__(self, client: EC2Client, settings: AutoscalerSettings) -> None:
        self.client = client
        self.settings = settings
        self._image: str | None = settings.ami
        # One launch at a time per process; across processes the slot tokens decide.
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------
    def _describe(self, states: Sequence[str]
                  ) -> builtins.list[tuple[Instance, InstanceTypeDef]]:
        filters: builtins.list[FilterTypeDef] = [
            {"Name": f"tag:{ROLE_TAG}", "Values": [self.settings.role]},
            {"Name": "instance-state-name", "Values": states}]
        found = []
        try:
            for page in self.client.get_paginator("describe_instances").paginate(
                    Filters=filters):
                for reservation in page.get("Reservations", []):
                    for raw in reservation.get("Instances", []):
                        inst = parse_instance(raw, self.settings.name_prefix)
                        if inst is not None:
                            found.append((inst, raw))
        except CALL_ERRORS as err:
            raise FleetError(f"cannot list instances: {err}") from err
        return found

    def list(self) -> list[Instance]:
        """Our instances that are not terminated, by slot then launch time."""
        live = [inst for inst, _ in self._describe(_ALL_STATES[:-1])]
        return sorted(live, key=lambda i: (i.slot, i.since, i.id))

    # -- launching ---------------------------------------------------------------------
    def image_id(self) -> str:
        """The AMI to run when no launch template is set (embedded: moto's first image)."""
        if self._image is None:
            try:
                # A name filter keeps the answer small (moto lists ~1300 public images).
                images = self.client.describe_images(
                    Owners=["amazon"],
                    Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*x86_64*"]}],
                ).get("Images", [])
            except CALL_ERRORS as err:
                raise FleetError(f"cannot list images: {err}") from err
            if not images:
                raise FleetError("no AMI: set FACEFLEET_AMI or FACEFLEET_LAUNCH_TEMPLATE")
            self._image = sorted(images, key=lambda img: img.get("Name", ""))[-1]["ImageId"]
        return self._image

    def client_token(self, slot: int, generation: int) -> str:
        """Idempotency token of the launch of ``slot`` (≤ 64 ASCII characters)."""
        role = hashlib.sha256(self.settings.role.encode()).hexdigest()[:12]
        return f"facefleet-{role}-s{slot}-g{generation}"

    def _run_args(self, slot: int, generation: int) -> dict[str, Any]:
        s = self.settings
        tags = [{"Key": "Name", "Value": s.instance_name(slot)},
                {"Key": ROLE_TAG, "Value": s.role},
                {"Key": SLOT_TAG, "Value": str(slot)},
                {"Key": _GENERATION_TAG, "Value": str(generation)},
                {"Key": ORIGIN_TAG, "Value": "launch"}]
        args: dict[str, Any] = {
            "MinCount": 1, "MaxCount": 1,
            "ClientToken": self.client_token(slot, generation),
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        }
        if s.launch_template:
            key = "LaunchTemplateId" if _TEMPLATE_ID.match(s.launch_template) else \
                "LaunchTemplateName"
            args["LaunchTemplate"] = {key: s.launch_template, "Version": "$Default"}
        else:
            args["ImageId"] = self.image_id()
            args["InstanceType"] = s.instance_type
            user_data = s.user_data()
            if user_data:
                args["UserData"] = user_data
        if s.subnet_id:
            args["SubnetId"] = s.subnet_id
        if s.security_group_ids:
            args["SecurityGroupIds"] = list(s.security_group_ids)
        if s.instance_profile:
            args["IamInstanceProfile"] = {"Name": s.instance_profile}
        if s.key_name:
            args["KeyName"] = s.key_name
        return args

    def _generations(self) -> dict[int, int]:
        """Highest generation seen per slot, terminated instances included."""
        gens: dict[int, int] = {}
        for inst, raw in self._describe(_ALL_STATES):
            tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
            try:
                gen = int(tags.get(_GENERATION_TAG, "0"))
            except ValueError:
                gen = 0
            gens[inst.slot] = max(gens.get(inst.slot, 0), gen)
        return gens

    def _run_one(self, slot: int, generation: int) -> Instance:
        try:
            response = self.client.run_instances(**self._run_args(slot, generation))
            raw = response["Instances"][0]
        except (*CALL_ERRORS, KeyError, IndexError) as err:
            raise FleetError(f"cannot launch {self.settings.instance_name(slot)}: {err}"
                             ) from err
        inst = parse_instance(raw, self.settings.name_prefix)
        if inst is None:  # the endpoint dropped our tags: still count it by the slot we asked
            inst = Instance(raw["InstanceId"], self.settings.instance_name(slot), slot,
                            raw["State"]["Name"], _epoch(raw["LaunchTime"]))
        return inst

    def launch(self, n: int) -> builtins.list[Instance]:
        """Launch up to ``n`` instances in the lowest free slots (in parallel)."""
        if n <= 0:
            return []
        with self._lock:
            live = self.list()
            slots = free_slots(live, self.settings.max_instances)[:n]
            if not slots:
                return []
            gens = self._generations()
            with ThreadPoolExecutor(max_workers=min(len(slots), 8)) as pool:
                futures = [pool.submit(self._run_one, s, gens.get(s, 0) + 1) for s in slots]
                results: builtins.list[Instance] = []
                errors: builtins.list[FleetError] = []
                for future in futures:
                    try:
                        results.append(future.result())
                    except FleetError as err:
                        errors.append(err)
            self.dedupe()
            if errors and not results:
                raise errors[0]
            return results

    def dedupe(self) -> builtins.list[str]:
        """Terminate all but the oldest live instance of any slot holding several
        (only endpoints that ignore ClientToken produce them); returns the ids ended."""
        by_slot: dict[int, list[Instance]] = {}
        for inst in self.list():
            if inst.state in SLOT_STATES:
                by_slot.setdefault(inst.slot, []).append(inst)
        extra = [i.id for group in by_slot.values() if len(group) > 1
                 for i in sorted(group, key=lambda i: (i.since, i.id))[1:]]
        beyond = [i.id for slot, group in by_slot.items()
                  if slot > self.settings.max_instances for i in group]
        ended = []
        for iid in extra + beyond:
            try:
                self.terminate([iid])
                ended.append(iid)
            except FleetError:
                # a racing controller may be terminating the same duplicate: fine if it
                # is on its way out, an error otherwise
                states = {i.id: i.state for i in self.list()}
                if states.get(iid) in {"pending", "running", "stopped"}:
                    raise
        return ended

    # -- state changes -----------------------------------------------------------------
    def _call(self, what: str, method: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            getattr(self.client, method)(InstanceIds=list(ids))
        except CALL_ERRORS as err:
            raise FleetError(f"cannot {what} {', '.join(ids)}: {err}") from err

    def start(self, ids: Sequence[str]) -> None:
        """Start stopped instances, marking them as started (for the start timeout)."""
        if not ids:
            return
        try:
            self.client.create_tags(Resources=list(ids),
                                    Tags=[{"Key": ORIGIN_TAG, "Value": "start"}])
        except CALL_ERRORS as err:
            raise FleetError(f"cannot tag {', '.join(ids)}: {err}") from err
        self._call("start", "start_instances", ids)

    def stop(self, ids: Sequence[str]) -> None:
        """Stop instances (their worker gets a warm shutdown)."""
        self._call("stop", "stop_instances", ids)

    def terminate(self, ids: Sequence[str]) -> None:
        """Terminate instances."""
        self._call("terminate", "terminate_instances", ids)
