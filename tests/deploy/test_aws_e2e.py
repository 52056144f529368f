"""The AWS deployment end to end, against the embedded AWS: Terraform applies the module
to a moto server of its own, the web tier, a worker (its unit's command) and the
controller (in the AWS profile, on the created launch template) run with the
environment the module renders, a burst goes through the created queue, and
``terraform destroy`` leaves nothing behind.

Each process signs with its own access key id, and the server logs every call it
answers (``deploy/moto_server.py --call-log``): every call of each process role must be
allowed by that role's policy as Terraform renders it, and the policies may grant
nothing no call needed beyond the documented list (:data:`deploy.iam_audit.UNEXERCISED`).

The tests of this module run in order and share one deployment (module scope).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from config import aws
from config.aws import read_queue_depth
from config.serving import ServingSettings
from config.settings import Settings
from deploy.embedded_aws import free_port, start_moto, stop_process
from deploy.iam_audit import EXPLAINED_FINDINGS, UNEXERCISED, audit, read_calls
from deploy.provision import DLQ_RETENTION, request_queue_attributes
from recognition.weights import ensure_weights
from recognition.weights.sdist import celebrity_dataset
from tests.deploy.imds import named_instance, serve_imds
from tests.deploy.test_terraform import MODULE, SYSTEMD, Terraform, find_mirror
from tests.webapp.stack import start_gunicorn

ROOT = Path(__file__).resolve().parents[2]
ROLE = "e2e-tier"
#: One access key id per process role: the call log tells them apart.
KEYS = {"AKWEB": "web", "AKWORKER": "worker", "AKCONTROLLER": "controller"}
KEY_OF = {role: key for key, role in KEYS.items()} | {"test": "AKTEST"}  # the test's own
BURST = 10


@dataclass
class Deployment:
    """The applied module, the processes running on it and what they logged."""

    tf: Terraform
    endpoint: str
    moto: subprocess.Popen[bytes]
    call_log: Path
    outputs: dict[str, Any]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self, role: str, kind: str = "control", **extra: str) -> dict[str, str]:
        """A process's environment: the rendered env file, its own key, this checkout."""
        return {**os.environ, **self.outputs["environment"][kind],
                "FACEFLEET_EMBEDDED_ACCESS_KEY": KEY_OF[role], "PYTHONPATH": str(ROOT),
                # Short long polls and a quick controller, so the test takes seconds.
                "FACEFLEET_SQS_WAIT_TIME": "2", "FACEFLEET_TICK_SECONDS": "0.5",
                "FACEFLEET_IDLE_GRACE_SECONDS": "1", "FACEFLEET_MIN_RUN_SECONDS": "0",
                "FACEFLEET_SCALE_IN_WINDOW_SECONDS": "1", **extra}

    def settings(self, role: str) -> Settings:
        return Settings.from_env(self.env(role))

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def source_archive(path: Path) -> Path:
    """The deployed version as the README says to build it (``git archive``), or, in a
    checkout without git, the tracked folders packed by hand."""
    proc = subprocess.run(["git", "archive", "--format=tar.gz", f"--output={path}", "HEAD"],
                          cwd=ROOT, capture_output=True, check=False)
    if proc.returncode != 0:
        with tarfile.open(path, "w:gz") as tar:
            for name in ("config", "tasks", "webapp", "autoscaler", "recognition", "deploy"):
                tar.add(ROOT / name, arcname=name)
    return path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The module applied to a fresh moto server (destroyed by the last test, and again
    here, whatever happened)."""
    binary, mirror = shutil.which("terraform"), find_mirror()
    if binary is None or mirror is None:
        pytest.skip("terraform or a local mirror of hashicorp/aws is missing (see "
                    "tests/deploy/test_terraform.py for the fix)")
    root = tmp_path_factory.mktemp("aws")
    logs = root / "logs"
    logs.mkdir()
    port = free_port()
    call_log = root / "calls.jsonl"
    moto = start_moto(port, log_path=logs / "moto.log", call_log=call_log)
    endpoint = f"http://127.0.0.1:{port}"
    shutil.copytree(MODULE, root / "deploy" / "terraform",
                    ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfvars"))
    shutil.copytree(SYSTEMD, root / "deploy" / "systemd")
    (root / "terraformrc").write_text("")
    tf = Terraform(binary, root / "deploy" / "terraform", {
        **os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0",
        "TF_DATA_DIR": str(root / "data"), "TF_CLI_CONFIG_FILE": str(root / "terraformrc")})
    weights = ensure_weights(Settings.from_env({}).weights,
                             Settings.from_env(dict(os.environ)).cache_dir)
    image = aws.ec2_client(Settings.from_env({"FACEFLEET_AWS_ENDPOINT": endpoint})
                           ).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    variables = {"aws_endpoint": endpoint, "name_prefix": "e2e", "force_destroy": "true",
                 "source_archive": str(source_archive(root / "facefleet.tar.gz")),
                 "weights_file": str(weights.path), "worker_ami": image, "control_ami": image,
                 "max_instances": "3", "worker_role_tag": ROLE}
    tfvars = root / "deploy" / "terraform" / "e2e.auto.tfvars.json"
    tfvars.write_text(json.dumps(variables))
    tf.run("init", "-backend=false", f"-plugin-dir={mirror}", "-input=false", "-no-color")
    deployment = Deployment(tf, endpoint, moto, call_log, {}, logs)
    try:
        tf.run("apply", "-auto-approve", "-input=false", "-no-color")
        outputs = json.loads(tf.run("output", "-json", "-no-color").stdout)
        deployment.outputs = {name: out["value"] for name, out in outputs.items()}
        yield deployment
    finally:
        deployment.stop_all()
        tf.run("destroy", "-auto-approve", "-input=false", "-no-color", check=False)
        stop_process(moto)


def test_resources_are_what_provisioning_makes(deployment: Deployment) -> None:
    """One source of truth: the queues and buckets Terraform made have the attributes
    deploy/provision.py sets on the embedded stack."""
    settings = deployment.settings("test")
    sqs, s3 = aws.sqs_client(settings), aws.s3_client(settings)
    queues = deployment.outputs["queues"]
    dlq = sqs.get_queue_attributes(QueueUrl=queues["dead_letter"]["url"],
                                   AttributeNames=["All"])["Attributes"]
    assert int(dlq["MessageRetentionPeriod"]) == DLQ_RETENTION
    wanted = request_queue_attributes(settings, ServingSettings.from_env(
        deployment.outputs["environment"]["worker"]), dlq["QueueArn"])
    actual = sqs.get_queue_attributes(QueueUrl=queues["requests"]["url"],
                                      AttributeNames=["All"])["Attributes"]
    for name, value in wanted.items():
        if name == "RedrivePolicy":  # moto answers the JSON with other whitespace
            got, want = json.loads(actual[name]), json.loads(value)
            assert got["deadLetterTargetArn"] == want["deadLetterTargetArn"]
            assert int(got["maxReceiveCount"]) == int(want["maxReceiveCount"])
        else:
            assert actual[name] == value, name
    assert s3.get_bucket_versioning(Bucket=settings.model_bucket)["Status"] == "Enabled"
    for bucket in (settings.input_bucket, settings.output_bucket, settings.model_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), (bucket, block)
        rules = s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]


@pytest.fixture(scope="module")
def imds() -> Iterator[str]:
    """The worker instance's metadata: its Name tag (the worker names itself after it)."""
    with serve_imds(named_instance("app-tier-instance-9")) as url:
        yield url


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_a_burst_scales_out_from_the_template_and_back_to_zero(
        deployment: Deployment, imds: str) -> None:
    d = deployment
    # The worker: its unit's command, with the model bucket's weights (checked by sha256).
    d.start("worker", [sys.executable, "-m", "deploy.node", "worker"],
            d.env("worker", "worker", FACEFLEET_IMDS_ENDPOINT=imds))
    d.start("controller", [sys.executable, "-m", "autoscaler", "-v"],
            d.env("controller", FACEFLEET_AUTOSCALER_PROFILE="aws"))
    web_settings = d.settings("web")
    web, url = start_gunicorn(web_settings, d.logs / "web.log",
                              {k: v for k, v in d.env("web").items()
                               if k != "FACEFLEET_WEB_BIND"})
    d.procs["web"] = web
    wait_for(lambda: " ready." in d.log("worker"), 180, "the worker")
    assert "app-tier-instance-9@" in d.log("worker")
    photos = sorted((celebrity_dataset(web_settings.cache_dir) / "val").glob("*/*.jpg"))

    def recognise(i: int) -> int:
        path = photos[i % len(photos)]
        r = requests.post(f"{url}/api/v1/recognitions", timeout=120,
                          files={"image": (path.name, path.read_bytes(), "image/jpeg")})
        return r.status_code

    ec2 = aws.ec2_client(d.settings("test"))
    role_filter = [{"Name": "tag:facefleet:role", "Values": [ROLE]}]

    def instances(*states: str) -> list[dict[str, Any]]:
        pages = ec2.describe_instances(Filters=[*role_filter, {
            "Name": "instance-state-name", "Values": list(states)}])["Reservations"]
        return [i for r in pages for i in r["Instances"]]

    # The dashboard's event listener, the fleet view and a result collected later: the
    # web tier's other calls.
    assert requests.get(f"{url}/api/v1/dashboard", timeout=30).status_code == 200
    wait_for(lambda: requests.get(f"{url}/api/v1/dashboard", timeout=30).json()[
        "monitor"]["state"] == "listening", 60, "the dashboard's listener")
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(recognise, range(BURST)))
    assert codes == [200] * BURST, codes
    later = requests.post(f"{url}/api/v1/recognitions?wait=false", timeout=60,
                          files={"image": ("later.jpg", photos[0].read_bytes(), "image/jpeg")})
    location = later.json()["location"]
    wait_for(lambda: requests.get(url + location, timeout=30).status_code == 200, 60,
             "the result collected later")
    assert requests.get(f"{url}/api/v1/fleet", timeout=30).json()["autoscaler"]["published"]
    launched = instances("pending", "running", "stopping", "stopped")
    assert 1 <= len(launched) <= 3, d.log("controller")[-3000:]
    template = d.outputs["launch_template_id"]
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template,
                                                 Versions=["$Default"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    # moto 5.2.5 does not copy IamInstanceProfile from a template to its instances: the
    # template carries the worker profile, and that is what EC2 applies.
    assert d.outputs["roles"]["worker"]["profile"] in json.dumps(data["IamInstanceProfile"])
    for inst in launched:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["Name"].startswith("app-tier-instance-") and tags["facefleet:role"] == ROLE
        assert inst["ImageId"] == data["ImageId"]
        user_data = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"],
                                                    Attribute="userData")["UserData"]
        assert user_data.get("Value") == data["UserData"]
    # Scaled back to zero once the queue is empty: no instance running or pending.
    wait_for(lambda: not instances("pending", "running"), 60, "scale-in to zero")
    # A second burst starts the stopped ones again (the warm pool) before launching
    # more. The worker is paused meanwhile, so the burst waits in the queue.
    d.procs["worker"].send_signal(signal.SIGSTOP)
    try:
        pending = [requests.post(f"{url}/api/v1/recognitions?wait=false", timeout=60, files={
            "image": (p.name, p.read_bytes(), "image/jpeg")}).json()["location"]
            for p in photos[:3]]

        def started() -> bool:
            return any(t == {"Key": "facefleet:origin", "Value": "start"}
                       for i in instances("pending", "running") for t in i["Tags"])

        wait_for(started, 30, "the warm pool's instances to start again")
    finally:
        d.procs["worker"].send_signal(signal.SIGCONT)
    for location in pending:
        wait_for(lambda loc=location: requests.get(url + loc, timeout=30).status_code == 200,
                 60, "the second burst")
    wait_for(lambda: not instances("pending", "running"), 60, "scale-in to zero again")
    depth = read_queue_depth(aws.sqs_client(d.settings("test")),
                             d.outputs["queues"]["requests"]["url"])
    assert (depth.visible, depth.in_flight) == (0, 0)
    d.stop_all()  # their reply and monitoring queues go with them
    for name, proc in d.procs.items():
        assert proc.returncode == 0, (name, d.log(name)[-3000:])
    # Before `terraform destroy`: the controller's instances are not Terraform's.
    subprocess.run([sys.executable, "-m", "autoscaler", "--terminate-all"], cwd=ROOT,
                   env=d.env("controller", FACEFLEET_AUTOSCALER_PROFILE="aws"),
                   check=True, capture_output=True, timeout=60)


def test_every_call_is_allowed_and_no_grant_is_unused(deployment: Deployment) -> None:
    policies = deployment.outputs["iam_policies"]
    results = audit(read_calls(deployment.call_log), policies, KEYS)
    problems = {}
    for role, result in results.items():
        denied = sorted({(c.action, c.resource) for c in result.denied})
        unexplained = sorted(set(result.unused) - UNEXERCISED.get(role, {}).keys())
        if result.calls == 0 or denied or unexplained:
            problems[role] = {"calls": result.calls, "denied": denied,
                              "granted but unused": unexplained}
    assert not problems, json.dumps(problems, indent=1)


def test_the_policies_pass_parliament(deployment: Deployment) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from parliament import analyze_policy_string, config

    for role, document in deployment.outputs["iam_policies"].items():
        findings = [f for f in analyze_policy_string(document).findings
                    if config.get(f.issue, {}).get("severity") not in ("LOW", "INFO", "MUTE")
                    and not all((f.issue, item.get("action")) in EXPLAINED_FINDINGS
                                for item in (f.detail if isinstance(f.detail, list) else [{}]))]
        assert not findings, (role, [(f.issue, f.detail) for f in findings])


def test_destroy_leaves_nothing(deployment: Deployment) -> None:
    d = deployment
    d.tf.run("destroy", "-auto-approve", "-input=false", "-no-color")
    settings = d.settings("test")
    s3, sqs = aws.s3_client(settings), aws.sqs_client(settings)
    assert s3.list_buckets()["Buckets"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert aws.sns_client(settings).list_topics()["Topics"] == []
    iam = aws.client(settings, "iam")
    assert [r for r in iam.list_roles()["Roles"] if "e2e" in r["RoleName"]] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    ec2 = aws.ec2_client(settings)
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []
    live = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]
    assert live == []
