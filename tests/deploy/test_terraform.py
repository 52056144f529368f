"""The Terraform root module (deploy/terraform/), offline: fmt, validate, and
``terraform test`` against a mocked aws provider, then the rendered outputs checked
against the code (every environment variable is a documented setting and parses, the
queue attributes are provision.py's, each role's policy allows what its process does).

Nothing is applied here (the end-to-end test applies the module to the embedded AWS).
The module is copied to a temporary folder with deploy/systemd beside it, and
initialised there from a local provider mirror, so neither ``.terraform/`` nor a lock
file is ever written into the repository. Skipped, with the fix, when terraform or a
mirror of hashicorp/aws is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from config.autoscaler import AutoscalerSettings
from config.monitoring import MonitoringSettings
from config.serving import ServingSettings
from config.settings import Settings
from config.web import WebSettings
from deploy.provision import DLQ_RETENTION, request_queue_attributes

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "deploy" / "terraform"
SYSTEMD = REPO / "deploy" / "systemd"
CONFIGURATION_DOC = REPO / "docs" / "configuration.md"
PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"
#: Where a local mirror of the aws provider is looked for ($TF_PLUGIN_MIRROR first).
MIRROR_CANDIDATES = [
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
]
#: terraform test spawns the provider once per run block: seconds each.
TIMEOUT_S = 300
ACCOUNT = "123456789012"  # the mocked account (tests/mocks/aws.tfmock.hcl)


def find_mirror() -> Path | None:
    """A folder holding registry.terraform.io/hashicorp/aws/<version>/<platform>/."""
    env = os.environ.get("TF_PLUGIN_MIRROR")
    for folder in ([Path(env)] if env else []) + MIRROR_CANDIDATES:
        provider = folder / PROVIDER
        if provider.is_dir() and any(p.is_dir() for p in provider.glob("*/*")):
            return folder
    return None


@dataclass(frozen=True)
class Terraform:
    """terraform run in a private copy of the module, initialised from the mirror."""

    binary: str
    workdir: Path
    env: Mapping[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], cwd=self.workdir, env=dict(self.env),
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"terraform {' '.join(args)} exited {proc.returncode}:\n"
                        f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
        return proc


def write_fixtures(folder: Path) -> None:
    """The stand-ins ``terraform test`` uploads: a source archive (the module requires a
    .tar.gz) and a weights file (any bytes). Made here, never committed."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "source.tar.gz", "w:gz") as tar:
        for name in ("README.md", "requirements.txt", "requirements-nodeps.txt"):
            tar.add(REPO / name, arcname=name)
    (folder / "fake-weights.bin").write_text(
        "not a real state dict: a stand-in for the weights in tests\n")


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terraform]:
    """An initialised copy of deploy/terraform (with deploy/systemd beside it)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not on PATH: install Terraform >= 1.7 "
                    "(https://developer.hashicorp.com/terraform/install)")
    mirror = find_mirror()
    if mirror is None:
        pytest.skip(f"no local mirror of hashicorp/aws ({PROVIDER}) under $TF_PLUGIN_MIRROR or "
                    f"{', '.join(str(p) for p in MIRROR_CANDIDATES)}: on a machine with "
                    "internet run `terraform providers mirror /opt/tf-plugins` in "
                    "deploy/terraform (or set TF_PLUGIN_MIRROR)")
    root = tmp_path_factory.mktemp("terraform")
    skip = shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl", "*.tfvars")
    shutil.copytree(MODULE, root / "deploy" / "terraform", ignore=skip)
    shutil.copytree(SYSTEMD, root / "deploy" / "systemd")
    write_fixtures(root / "deploy" / "terraform" / "tests" / "fixtures")
    cli_config = root / "terraformrc"
    cli_config.write_text("")  # nothing from the user's own CLI configuration
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0",
           "TF_DATA_DIR": str(root / "data"), "TF_CLI_CONFIG_FILE": str(cli_config)}
    for name in ("TF_CLI_ARGS", "TF_CLI_ARGS_init", "TF_CLI_ARGS_test", "TF_WORKSPACE"):
        env.pop(name, None)
    tf = Terraform(binary, root / "deploy" / "terraform", env)
    tf.run("init", "-backend=false", f"-plugin-dir={mirror}", "-input=false", "-no-color")
    yield tf


@dataclass(frozen=True)
class RunState:
    """What one applied (mocked) run of ``terraform test`` left: outputs and resources."""

    outputs: dict[str, Any]
    resources: dict[str, dict[str, Any]]  # address -> attribute values


@pytest.fixture(scope="module")
def runs(terraform: Terraform) -> dict[str, RunState]:
    """``terraform test`` (mocked provider): every run must pass. Returns the state of
    each run that applies, from the JSON report."""
    proc = terraform.run("test", "-json", "-verbose", "-no-color", check=False)
    states: dict[str, RunState] = {}
    messages = []
    summary: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        kind = event.get("type")
        if kind == "test_state":
            state = event["test_state"]
            states[event["@testrun"]] = RunState(
                {name: out["value"] for name, out in state["outputs"].items()},
                {r["address"]: r["values"] for r in state["root_module"]["resources"]})
        elif kind == "test_summary":
            summary = event["test_summary"]
        elif kind == "diagnostic":
            diag = event["diagnostic"]
            where = diag.get("range", {}).get("start", {}).get("line", "?")
            messages.append(f"{event.get('@testrun', '')} (line {where}): {diag['summary']}: "
                            f"{diag.get('detail', '')}")
    if proc.returncode != 0 or summary.get("status") != "pass":
        pytest.fail("terraform test failed:\n" + "\n".join(messages)[-8000:]
                    + f"\n{proc.stderr[-4000:]}")
    return states


def test_fmt(terraform: Terraform) -> None:
    proc = terraform.run("fmt", "-check", "-recursive", "-diff", "-no-color", check=False)
    assert proc.returncode == 0, f"run `terraform fmt -recursive` in deploy/terraform:\n" \
                                 f"{proc.stdout}{proc.stderr}"


def test_validate(terraform: Terraform) -> None:
    terraform.run("validate", "-no-color")


def test_terraform_test_passes(runs: dict[str, RunState]) -> None:
    # The runs that apply (mocked) report their state: the defaults and everything changed.
    assert {"defaults", "custom"} <= set(runs)


# ---------------------------------------------------------------- the environment


def documented_variables() -> set[str]:
    """Every variable docs/configuration.md (generated from config/) lists."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", CONFIGURATION_DOC.read_text(),
                          flags=re.MULTILINE))


def test_every_variable_the_module_names_is_a_documented_setting() -> None:
    # A misspelt name is a silent default: check every FACEFLEET_* the module mentions.
    named = set()
    for path in [*MODULE.glob("*.tf"), *MODULE.glob("templates/*")]:
        named |= set(re.findall(r"\bFACEFLEET_[A-Z0-9_]+\b", path.read_text()))
    assert named, "the module sets FACEFLEET_* variables"
    unknown = named - documented_variables()
    assert not unknown, f"not settings of the code (docs/configuration.md): {sorted(unknown)}"


def test_rendered_environment_is_documented_and_parses(
        runs: dict[str, RunState]) -> None:
    documented = documented_variables()
    for run in ("defaults", "custom"):
        environment = runs[run].outputs["environment"]
        for kind in ("worker", "control"):
            env = environment[kind]
            assert set(env) <= documented, (run, kind, sorted(set(env) - documented))
            # Every process's settings load from it without a ConfigError.
            settings = Settings.from_env(env)
            ServingSettings.from_env(env)
            MonitoringSettings.from_env(env)
            AutoscalerSettings.from_env(env)
            assert settings.weights.startswith(f"s3://{settings.model_bucket}/weights/")
        control = environment["control"]
        AutoscalerSettings.from_env(control).check_launchable()
        assert WebSettings.from_env(control).bind == "0.0.0.0:80"


def test_default_environment_is_the_codes_defaults_on_aws(
        runs: dict[str, RunState]) -> None:
    env = runs["defaults"].outputs["environment"]["worker"]
    settings, defaults = Settings.from_env(env), Settings.from_env({})
    serving, serving_defaults = ServingSettings.from_env(env), ServingSettings.from_env({})
    assert settings.aws_endpoint is None, "FACEFLEET_AWS_ENDPOINT=aws: real AWS"
    for name in ("input_bucket", "output_bucket", "model_bucket", "queue", "dead_letter_queue",
                 "max_receives", "gallery", "device", "fleet_state_key"):
        assert getattr(settings, name) == getattr(defaults, name), name
    for name in ("visibility_timeout", "visibility_extend_every", "wait_time_seconds",
                 "reply_queue_prefix"):
        assert getattr(serving, name) == getattr(serving_defaults, name), name
    assert MonitoringSettings.from_env(env) == MonitoringSettings.from_env({})
    autoscaler, autoscaler_defaults = AutoscalerSettings.from_env(env), \
        AutoscalerSettings.from_env({})
    assert (autoscaler.role, autoscaler.max_instances) == (autoscaler_defaults.role,
                                                           autoscaler_defaults.max_instances)


# ---------------------------------------------------------------- queues and weights


def test_queue_attributes_are_provisions(runs: dict[str, RunState]) -> None:
    # The attributes Terraform gives the queues are the ones deploy/provision.py would set
    # for the environment the instances get.
    for run in ("defaults", "custom"):
        env = runs[run].outputs["environment"]["worker"]
        settings, serving = Settings.from_env(env), ServingSettings.from_env(env)
        queue = runs[run].resources["aws_sqs_queue.requests"]
        dlq = runs[run].resources["aws_sqs_queue.dead_letter"]
        assert (queue["name"], dlq["name"]) == (settings.queue, settings.dead_letter_queue)
        wanted = request_queue_attributes(settings, serving, dlq["arn"])
        made = {"VisibilityTimeout": str(queue["visibility_timeout_seconds"]),
                "ReceiveMessageWaitTimeSeconds": str(queue["receive_wait_time_seconds"])}
        assert made == {k: v for k, v in wanted.items() if k != "RedrivePolicy"}
        # SQS answers maxReceiveCount as a number whatever it was sent as.
        redrive = json.loads(queue["redrive_policy"])
        wanted_redrive = json.loads(wanted["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == wanted_redrive["deadLetterTargetArn"]
        assert int(redrive["maxReceiveCount"]) == int(wanted_redrive["maxReceiveCount"])
        assert dlq["message_retention_seconds"] == DLQ_RETENTION


def test_weights_metadata_is_the_registrys(runs: dict[str, RunState]) -> None:
    from recognition.weights.registry import META_DIM, META_MODEL, META_SHA256

    weights = runs["defaults"].outputs["weights"]
    assert set(weights["metadata"]) == {META_SHA256, META_DIM, META_MODEL}
    assert weights["metadata"][META_SHA256] == weights["sha256"]
    key = weights["uri"].split("/", 3)[3]
    assert key == f"weights/facenet-msceleb-128-{weights['sha256'][:16]}.pt", \
        "deploy/provision.py's key for these weights"


# ---------------------------------------------------------------- the policies


def _allowed(policy: str, action: str, resource: str) -> bool:
    return IAMPolicy(policy).is_action_permitted(action, resource) == PermissionResult.PERMITTED


INPUT, OUTPUT, MODELS = ("arn:aws:s3:::facefleet-input", "arn:aws:s3:::facefleet-output",
                         "arn:aws:s3:::facefleet-models")
SQS = f"arn:aws:sqs:us-east-1:{ACCOUNT}"
SNS = f"arn:aws:sns:us-east-1:{ACCOUNT}"
EC2 = f"arn:aws:ec2:us-east-1:{ACCOUNT}"

#: (role, IAM action, resource, allowed?): what each process does, and what it must not.
CASES = [
    ("web", "s3:PutObject", f"{INPUT}/0b1c/photo.jpg", True),
    ("web", "s3:PutObject", f"{INPUT}/enrol/0b1c/1-photo.jpg", True),
    ("web", "s3:ListBucket", INPUT, True),
    ("web", "s3:GetObject", f"{OUTPUT}/results/celery-task-meta-0b1c", True),
    ("web", "s3:GetObject", f"{OUTPUT}/fleet/state.json", True),
    ("web", "s3:PutObject", f"{MODELS}/gallery.json", True),
    ("web", "sqs:SendMessage", f"{SQS}:facefleet-requests", True),
    ("web", "sqs:CreateQueue", f"{SQS}:facefleet-reply-ip-10-0-0-1-4242-0a1b2c3d", True),
    ("web", "sqs:CreateQueue", f"{SQS}:ffmon-ls-celeryev-dashboard-0a1b2c3d", True),
    ("web", "sns:Subscribe", f"{SNS}:celeryev", True),
    ("web", "sqs:ListQueues", "*", True),
    ("web", "s3:GetObject", f"{OUTPUT}/photo", False),
    ("web", "s3:PutObject", f"{OUTPUT}/fleet/state.json", False),
    ("web", "s3:GetObject", f"{MODELS}/weights/facenet-msceleb-128-0123456789abcdef.pt", False),
    ("web", "sqs:ReceiveMessage", f"{SQS}:facefleet-requests", False),
    ("web", "sqs:CreateQueue", f"{SQS}:someone-elses", False),
    ("web", "ec2:RunInstances", f"{EC2}:instance/*", False),
    ("worker", "s3:GetObject", f"{INPUT}/0b1c/photo.jpg", True),
    ("worker", "s3:PutObject", f"{OUTPUT}/photo", True),
    ("worker", "s3:PutObject", f"{OUTPUT}/results/celery-task-meta-0b1c", True),
    ("worker", "s3:GetObject", f"{MODELS}/weights/facenet-msceleb-128-0123456789abcdef.pt", True),
    ("worker", "s3:PutObject", f"{MODELS}/gallery.json", True),
    ("worker", "sqs:ReceiveMessage", f"{SQS}:facefleet-requests", True),
    ("worker", "sqs:ChangeMessageVisibility", f"{SQS}:facefleet-requests", True),
    ("worker", "sqs:SendMessage", f"{SQS}:facefleet-reply-ip-10-0-0-1-4242-0a1b2c3d", True),
    ("worker", "sns:Publish", f"{SNS}:celery-pidbox", True),
    ("worker", "s3:PutObject", f"{INPUT}/0b1c/photo.jpg", False),
    ("worker", "s3:PutObject", f"{MODELS}/weights/evil.pt", False),
    ("worker", "sqs:SendMessage", f"{SQS}:facefleet-requests", False),
    ("worker", "sqs:DeleteQueue", f"{SQS}:facefleet-requests", False),
    ("worker", "ec2:TerminateInstances", f"{EC2}:instance/i-0123", False),
    ("controller", "sqs:GetQueueAttributes", f"{SQS}:facefleet-requests", True),
    ("controller", "s3:PutObject", f"{OUTPUT}/fleet/state.json", True),
    ("controller", "ec2:DescribeInstances", "*", True),
    ("controller", "ec2:RunInstances", f"{EC2}:instance/*", True),
    ("controller", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/facefleet-worker", True),
    ("controller", "sns:Publish", f"{SNS}:celery-pidbox", True),
    ("controller", "s3:PutObject", f"{OUTPUT}/results/celery-task-meta-0b1c", False),
    ("controller", "s3:GetObject", f"{INPUT}/0b1c/photo.jpg", False),
    ("controller", "sqs:ReceiveMessage", f"{SQS}:facefleet-requests", False),
    ("controller", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/facefleet-control", False),
    ("controller", "sns:Subscribe", f"{SNS}:celeryev", False),  # it never listens
    ("controller", "sqs:SendMessage", f"{SQS}:ffmon-rp-x-0a1b2c3d", False),
    ("worker", "sqs:SendMessage", f"{SQS}:ffmon-rp-x-0a1b2c3d", True),  # its answers
    ("web", "sns:Unsubscribe", f"{SNS}:celeryev:0a1b-2c3d", True),
]


def test_policies_allow_what_each_process_does(runs: dict[str, RunState]) -> None:
    policies = runs["defaults"].outputs["iam_policies"]
    assert set(policies) == {"web", "worker", "controller"}
    wrong = [(role, action, resource, allowed) for role, action, resource, allowed in CASES
             if _allowed(policies[role], action, resource) != allowed]
    assert not wrong, f"(role, action, resource, expected) the policies get wrong: {wrong}"


def test_every_role_reads_only_the_deployed_release(
        runs: dict[str, RunState]) -> None:
    outputs = runs["defaults"].outputs
    release = f"{MODELS}/{outputs['release']['key']}"
    for role, policy in outputs["iam_policies"].items():
        assert _allowed(policy, "s3:GetObject", release), role
        assert not _allowed(policy, "s3:GetObject", f"{MODELS}/releases/{'0' * 64}.tar.gz"), role


# ---------------------------------------------------------------- units and user data


def test_units_and_install_agree_on_paths() -> None:
    install = (MODULE / "templates" / "install.sh.tftpl").read_text()
    compute = (MODULE / "compute.tf").read_text()
    for unit in sorted(SYSTEMD.glob("*.service")):
        text = unit.read_text()
        assert unit.name in compute, f"{unit.name} is installed by no instance"
        assert "EnvironmentFile=/etc/facefleet/facefleet.env" in text, unit.name
        assert "/opt/facefleet/.venv/bin/" in text, unit.name
    assert "ENV_FILE=/etc/facefleet/facefleet.env" in install
    assert 'MARKER="$APP/.installed-$RELEASE_SHA256"' in install
    assert "APP=/opt/facefleet" in install


def test_user_data_is_cloud_config_within_the_limit(
        runs: dict[str, RunState]) -> None:
    import yaml

    for run in ("defaults", "custom"):
        user_data = runs[run].outputs["user_data"]
        for name, text in [("worker", user_data["worker"]), *user_data["control"].items()]:
            assert len(text.encode()) <= 16384, (run, name, "EC2 limit on user data")
            doc = yaml.safe_load(text)
            files = {f["path"]: f for f in doc["write_files"]}
            env = files["/etc/facefleet/facefleet.env"]
            assert env["permissions"] == "0640"
            lines = dict(line.split("=", 1) for line in env["content"].splitlines())
            wanted = runs[run].outputs["environment"]["worker" if name == "worker" else "control"]
            assert lines == {k: f"'{v}'" for k, v in wanted.items()}, (run, name)
            for unit in ("facefleet-worker.service", "facefleet-spot-watch.service",
                         "facefleet-web.service", "facefleet-controller.service"):
                path = f"/etc/systemd/system/{unit}"
                if path in files:
                    assert files[path]["content"] == (SYSTEMD / unit).read_text(), unit
            assert doc["runcmd"] == [["/usr/local/sbin/facefleet-install"]]

