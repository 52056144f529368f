# Plan logic of the root module, against a mocked aws provider: nothing is created,
# no credentials or network are needed. Run from deploy/terraform:
#
#   terraform init -backend=false && terraform test
#
# (tests/deploy/test_terraform.py runs it offline from the local provider mirror.)

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  source_archive = "tests/fixtures/source.tar.gz"
  weights_file   = "tests/fixtures/fake-weights.bin"
}

# ---------------------------------------------------------------- the defaults

run "defaults" {
  # Mocked apply: computed attributes get the mocks' values.
  command = apply

  # -- provider: real AWS, no endpoint overrides
  assert {
    condition     = length(local.provider_endpoints) == 0 && !local.embedded
    error_message = "With aws_endpoint unset the provider must talk to real AWS."
  }

  # -- buckets: the code's default names, private, encrypted, model bucket versioned
  assert {
    condition = (aws_s3_bucket.this["input"].bucket == "facefleet-input"
      && aws_s3_bucket.this["output"].bucket == "facefleet-output"
    && aws_s3_bucket.this["model"].bucket == "facefleet-models")
    error_message = "Bucket names must default to the code's (facefleet-input/-output/-models)."
  }
  assert {
    condition     = alltrue([for b in aws_s3_bucket.this : b.force_destroy == false])
    error_message = "force_destroy must default to false."
  }
  assert {
    condition = length(aws_s3_bucket_public_access_block.this) == 3 && alltrue([
      for p in aws_s3_bucket_public_access_block.this :
      p.block_public_acls && p.block_public_policy && p.ignore_public_acls && p.restrict_public_buckets
    ])
    error_message = "Every bucket must block all public access."
  }
  assert {
    condition = length(aws_s3_bucket_server_side_encryption_configuration.this) == 3 && alltrue(flatten([
      for c in aws_s3_bucket_server_side_encryption_configuration.this : [
        for r in c.rule : [for d in r.apply_server_side_encryption_by_default : d.sse_algorithm == "AES256"]
      ]
    ]))
    error_message = "Every bucket must have default encryption (SSE-S3)."
  }
  assert {
    condition = (aws_s3_bucket_versioning.model.bucket == aws_s3_bucket.this["model"].id
    && aws_s3_bucket_versioning.model.versioning_configuration[0].status == "Enabled")
    error_message = "The model bucket must be versioned."
  }
  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.expire) == 0
    error_message = "Nothing expires by default."
  }

  # -- the queues: exactly deploy/provision.py's attributes
  assert {
    condition = (aws_sqs_queue.requests.name == "facefleet-requests"
      && aws_sqs_queue.requests.visibility_timeout_seconds == 30
    && aws_sqs_queue.requests.receive_wait_time_seconds == 10)
    error_message = "Request queue: facefleet-requests, VisibilityTimeout 30, ReceiveMessageWaitTimeSeconds 10."
  }
  assert {
    condition = (jsondecode(aws_sqs_queue.requests.redrive_policy).maxReceiveCount == 3
    && jsondecode(aws_sqs_queue.requests.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter.arn)
    error_message = "Redrive: to the dead-letter queue after 3 receives."
  }
  assert {
    condition = (aws_sqs_queue.dead_letter.name == "facefleet-requests-dlq"
    && aws_sqs_queue.dead_letter.message_retention_seconds == 1209600)
    error_message = "Dead-letter queue: facefleet-requests-dlq, kept 14 days."
  }

  # -- the monitoring topics: Celery's names, kombu's tags and nothing else
  assert {
    condition     = toset([for t in aws_sns_topic.monitoring : t.name]) == toset(["celery-pidbox", "celeryev"])
    error_message = "The monitoring topics are celery-pidbox and celeryev."
  }
  assert {
    condition = alltrue([for t in aws_sns_topic.monitoring : t.tags == tomap({
      ManagedBy   = "Celery/Kombu"
      Description = "This SNS topic is used by Kombu to enable Fanout support for AWS SQS."
    })])
    error_message = "The topics must carry exactly kombu's tags, or SNS refuses the processes' CreateTopic."
  }

  # -- the weights: registry metadata, provision.py's key
  assert {
    condition     = aws_s3_object.weights.key == "weights/facenet-msceleb-128-${substr(filesha256("tests/fixtures/fake-weights.bin"), 0, 16)}.pt"
    error_message = "Weights key: weights/<name>-<sha256[:16]>.pt."
  }
  assert {
    condition = aws_s3_object.weights.metadata == tomap({
      "sha256"          = filesha256("tests/fixtures/fake-weights.bin")
      "embedding-dim"   = "128"
      "facefleet-model" = "facenet-msceleb-128"
    })
    error_message = "Weights metadata must be what recognition.weights.upload_weights writes."
  }
  assert {
    condition     = aws_s3_object.source.key == "releases/${filesha256("tests/fixtures/source.tar.gz")}.tar.gz" && aws_s3_object.source.bucket == aws_s3_bucket.this["model"].id
    error_message = "The source archive goes to the model bucket under releases/<sha256>.tar.gz."
  }

  # -- the environment
  assert {
    condition = toset(keys(output.environment.worker)) == toset([
      "AWS_DEFAULT_REGION", "FACEFLEET_AWS_ENDPOINT", "FACEFLEET_CACHE", "FACEFLEET_DEVICE",
      "FACEFLEET_DLQ", "FACEFLEET_FLEET_STATE_KEY", "FACEFLEET_GALLERY", "FACEFLEET_INPUT_BUCKET",
      "FACEFLEET_MAX_INSTANCES", "FACEFLEET_MAX_RECEIVES", "FACEFLEET_MODEL_BUCKET",
      "FACEFLEET_MONITOR_QUEUE_PREFIX", "FACEFLEET_OUTPUT_BUCKET", "FACEFLEET_QUEUE",
      "FACEFLEET_REPLY_QUEUE_PREFIX", "FACEFLEET_ROLE", "FACEFLEET_SQS_WAIT_TIME",
      "FACEFLEET_VISIBILITY_EXTEND_EVERY", "FACEFLEET_VISIBILITY_TIMEOUT", "FACEFLEET_WEIGHTS",
    ])
    error_message = "Unexpected worker environment keys: ${jsonencode(keys(output.environment.worker))}"
  }
  assert {
    condition = (output.environment.control.FACEFLEET_LAUNCH_TEMPLATE == aws_launch_template.worker.id
      && output.environment.control.FACEFLEET_WEB_BIND == "0.0.0.0:80"
      && length(setsubtract(keys(output.environment.control), keys(output.environment.worker))) == 2
    && !contains(keys(output.environment.worker), "FACEFLEET_LAUNCH_TEMPLATE"))
    error_message = "The control environment is the worker's plus the launch template and the web bind address."
  }
  assert {
    condition = (output.environment.worker.FACEFLEET_AWS_ENDPOINT == "aws"
      && output.environment.worker.AWS_DEFAULT_REGION == "us-east-1"
      && output.environment.worker.FACEFLEET_WEIGHTS == "s3://facefleet-models/${aws_s3_object.weights.key}"
      && output.environment.worker.FACEFLEET_GALLERY == "s3://facefleet-models/gallery.json"
      && output.environment.worker.FACEFLEET_VISIBILITY_TIMEOUT == "30"
      && output.environment.worker.FACEFLEET_VISIBILITY_EXTEND_EVERY == "10"
      && output.environment.worker.FACEFLEET_SQS_WAIT_TIME == "10"
      && output.environment.worker.FACEFLEET_MAX_RECEIVES == "3"
      && output.environment.worker.FACEFLEET_DEVICE == "auto"
      && output.environment.worker.FACEFLEET_ROLE == "app-tier"
      && output.environment.worker.FACEFLEET_REPLY_QUEUE_PREFIX == "facefleet-reply-"
    && output.environment.worker.FACEFLEET_MONITOR_QUEUE_PREFIX == "ffmon-")
    error_message = "Environment values must follow the variables and the code's defaults."
  }

  # -- the launch template
  assert {
    condition = (aws_launch_template.worker.metadata_options[0].http_tokens == "required"
      && aws_launch_template.worker.metadata_options[0].instance_metadata_tags == "enabled"
    && aws_launch_template.worker.metadata_options[0].http_endpoint == "enabled")
    error_message = "Workers: IMDSv2 only, with the instance tags in the metadata."
  }
  assert {
    condition     = aws_launch_template.worker.iam_instance_profile[0].arn == aws_iam_instance_profile.process["worker"].arn
    error_message = "The launch template must hand out the worker instance profile."
  }
  assert {
    condition = (toset(aws_launch_template.worker.vpc_security_group_ids) == toset([aws_security_group.worker.id])
    && length(aws_launch_template.worker.network_interfaces) == 0)
    error_message = "Without a subnet the workers' security group sits on the template itself."
  }
  assert {
    condition = (aws_launch_template.worker.instance_type == "c7i.large"
      && aws_launch_template.worker.image_id == "ami-0a12023a12023a120"
      && aws_launch_template.worker.update_default_version
    && aws_launch_template.worker.block_device_mappings[0].device_name == "/dev/xvda")
    error_message = "Launch template: default type, looked-up AMI and its root device, default version follows."
  }
  assert {
    condition     = base64decode(aws_launch_template.worker.user_data) == output.user_data.worker
    error_message = "The template's user data is the rendered worker cloud-init."
  }
  assert {
    condition = (startswith(output.user_data.worker, "#cloud-config\n")
      && strcontains(output.user_data.worker, "path: /etc/systemd/system/facefleet-worker.service")
      && strcontains(output.user_data.worker, "path: /etc/systemd/system/facefleet-spot-watch.service")
      && !strcontains(output.user_data.worker, "facefleet-web.service")
      && strcontains(output.user_data.worker, "FACEFLEET_QUEUE='facefleet-requests'")
      && strcontains(output.user_data.worker, "recognition weights --name \"$WEIGHTS_URI\"")
    && length(output.user_data.worker) <= 16384)
    error_message = "Worker user data: cloud-config with the worker units, the env file and the weights check, within 16 KiB."
  }
  assert {
    condition = (strcontains(output.install_script, "MARKER=\"$APP/.installed-$RELEASE_SHA256\"")
      && strcontains(output.install_script, "RELEASE_SHA256='${filesha256("tests/fixtures/source.tar.gz")}'")
    && strcontains(output.install_script, "--no-deps -r \"$APP/requirements-nodeps.txt\""))
    error_message = "The install script skips an installed release and installs requirements-nodeps.txt with --no-deps."
  }

  # -- the control instance: one, both process roles, HTTP closed by default
  assert {
    condition = (keys(aws_instance.control) == ["control"]
      && aws_instance.control["control"].iam_instance_profile == aws_iam_instance_profile.process["control"].name
      && aws_instance.control["control"].metadata_options[0].http_tokens == "required"
    && aws_instance.control["control"].user_data_replace_on_change)
    error_message = "One control instance with the control profile, IMDSv2, replaced when its user data changes."
  }
  assert {
    condition = (strcontains(output.user_data.control["control"], "path: /etc/systemd/system/facefleet-web.service")
      && strcontains(output.user_data.control["control"], "path: /etc/systemd/system/facefleet-controller.service")
      && strcontains(output.user_data.control["control"], "FACEFLEET_LAUNCH_TEMPLATE='lt-0123456789abcdef0'")
    && !strcontains(output.user_data.control["control"], "recognition weights"))
    error_message = "Control user data: web and controller units, the launch template id, no weights download."
  }
  assert {
    condition     = length(aws_security_group.control.ingress) == 0 && length(aws_security_group.worker.ingress) == 0
    error_message = "No inbound traffic by default, to workers or to the control instance."
  }
  assert {
    condition     = output.web_url == "http://ec2-203-0-113-10.compute-1.amazonaws.com/"
    error_message = "web_url must be the control instance's public name."
  }

  # -- roles: one per process role, and the control instance's (web + controller)
  assert {
    condition = (toset(keys(aws_iam_role.process)) == toset(["web", "worker", "controller", "control"])
      && toset(keys(aws_iam_instance_profile.process)) == toset(["web", "worker", "controller", "control"])
      && toset(keys(aws_iam_policy.process)) == toset(["web", "worker", "controller"])
    && toset(keys(aws_iam_role_policy_attachment.process)) == toset(["web/web", "worker/worker", "controller/controller", "control/web", "control/controller"]))
    error_message = "Roles web, worker, controller (one policy each) and control (web + controller)."
  }
  assert {
    condition = alltrue([for r in aws_iam_role.process :
    jsondecode(r.assume_role_policy).Statement[0].Principal.Service == "ec2.amazonaws.com"])
    error_message = "Only EC2 may assume the roles."
  }

  # -- policies: the expected actions, no wildcard action, "*" only where IAM cannot scope
  assert {
    condition = toset(flatten([for s in local.web_policy.Statement : s.Action])) == toset([
      "s3:PutObject", "s3:ListBucket", "s3:GetObject",
      "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
      "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:ReceiveMessage", "sqs:DeleteMessage",
      "sqs:TagQueue", "sqs:ListQueueTags", "sqs:SetQueueAttributes", "sqs:SendMessage",
      "sqs:ListQueues",
      "sns:CreateTopic", "sns:Publish", "sns:Subscribe", "sns:Unsubscribe",
      "sns:ListSubscriptionsByTopic", "sns:TagResource",
    ])
    error_message = "Web policy actions: ${jsonencode(sort(distinct(flatten([for s in local.web_policy.Statement : s.Action]))))}"
  }
  assert {
    condition = toset(flatten([for s in local.worker_policy.Statement : s.Action])) == toset([
      "s3:GetObject", "s3:PutObject", "s3:ListBucket",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage",
      "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:TagQueue", "sqs:ListQueueTags",
      "sqs:SetQueueAttributes", "sqs:ListQueues",
      "sns:CreateTopic", "sns:Publish", "sns:Subscribe", "sns:Unsubscribe",
      "sns:ListSubscriptionsByTopic", "sns:TagResource",
    ])
    error_message = "Worker policy actions: ${jsonencode(sort(distinct(flatten([for s in local.worker_policy.Statement : s.Action]))))}"
  }
  assert {
    condition = toset(flatten([for s in local.controller_policy.Statement : s.Action])) == toset([
      "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "s3:PutObject", "s3:GetObject",
      "ec2:DescribeInstances", "ec2:RunInstances", "ec2:CreateTags",
      "ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances", "iam:PassRole",
      "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:ReceiveMessage", "sqs:DeleteMessage",
      "sqs:TagQueue", "sqs:ListQueueTags", "sqs:ListQueues",
      "sns:CreateTopic", "sns:Publish", "sns:Unsubscribe",
      "sns:ListSubscriptionsByTopic", "sns:TagResource",
    ])
    error_message = "Controller policy actions: ${jsonencode(sort(distinct(flatten([for s in local.controller_policy.Statement : s.Action]))))}"
  }
  assert {
    condition = alltrue(flatten([for p in values(local.policies) : [for s in p.Statement : [
      for a in s.Action : a != "*" && !endswith(a, ":*") && s.Effect == "Allow"
    ]]]))
    error_message = "No policy may grant a wildcard action (* or service:*)."
  }
  assert {
    condition = alltrue(flatten([for p in values(local.policies) : [for s in p.Statement :
      !contains(s.Resource, "*") || (length(s.Resource) == 1 && length(setsubtract(s.Action, ["sqs:ListQueues", "ec2:DescribeInstances", "sns:Unsubscribe"])) == 0)
    ]]))
    error_message = "Resource \"*\" only for sqs:ListQueues, ec2:DescribeInstances and sns:Unsubscribe, which IAM cannot scope."
  }
  assert {
    condition = alltrue(flatten([for p in values(local.policies) : [for s in p.Statement : [
      for r in s.Resource : r == "*" || can(regex("^arn:aws:(s3:::facefleet-(input|output|models)(/.+)?|sqs:us-east-1:123456789012:(facefleet-requests|facefleet-reply-\\*|ffmon-\\*)|sns:us-east-1:123456789012:(celery-pidbox|celeryev)(:\\*)?|ec2:us-east-1:(123456789012)?:.+|iam::123456789012:role/facefleet-worker)$", r))
    ]]]))
    error_message = "Every resource must be one of this deployment's buckets, queues, topics, EC2 resources or the worker role."
  }
  assert {
    condition = alltrue([for s in local.web_policy.Statement : !contains(s.Action, "s3:PutObject") || s.Resource == [
      "arn:aws:s3:::facefleet-input/*"] || s.Resource == ["arn:aws:s3:::facefleet-models/gallery.json"]
    ])
    error_message = "The web tier may write uploads and the gallery only."
  }
  assert {
    condition = alltrue([for s in local.controller_policy.Statement : !contains(s.Action, "s3:PutObject") || s.Resource == [
    "arn:aws:s3:::facefleet-output/fleet/state.json"]])
    error_message = "The controller may write the fleet state only."
  }
  assert {
    condition = alltrue([for s in local.controller_policy.Statement :
      !anytrue([for a in ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"] : contains(s.Action, a)])
    || try(s.Condition.StringEquals["aws:ResourceTag/facefleet:role"], "") == "app-tier"])
    error_message = "Start/stop/terminate only instances tagged facefleet:role=app-tier."
  }
  assert {
    condition = alltrue([for s in local.controller_policy.Statement :
      !contains(s.Action, "ec2:RunInstances") || !anytrue([for r in s.Resource : strcontains(r, ":instance/")])
      || (try(s.Condition.ArnEquals["ec2:LaunchTemplate"], "") == aws_launch_template.worker.arn
    && try(s.Condition.StringEquals["aws:RequestTag/facefleet:role"], "") == "app-tier")])
    error_message = "RunInstances on instances only from the worker template and tagged as workers."
  }
  assert {
    condition = alltrue([for s in local.controller_policy.Statement :
      !contains(s.Action, "iam:PassRole") || (s.Resource == ["arn:aws:iam::123456789012:role/facefleet-worker"]
    && try(s.Condition.StringEquals["iam:PassedToService"], "") == "ec2.amazonaws.com")])
    error_message = "PassRole only on the worker role, only to EC2."
  }
  assert {
    condition     = alltrue([for k, p in output.iam_policies : jsondecode(p) == local.policies[k]]) && jsondecode(aws_iam_policy.process["controller"].policy) == local.controller_policy
    error_message = "The output iam_policies and the IAM policies must be the documents above."
  }
  assert {
    condition = alltrue([for p in values(local.policies) : contains(flatten([for s in p.Statement : s.Resource]),
    "arn:aws:s3:::facefleet-models/${aws_s3_object.source.key}")])
    error_message = "Every role may read the deployed release (the install downloads it)."
  }
}

# ---------------------------------------------------------------- the embedded AWS

run "embedded_endpoint" {
  command = plan

  variables {
    aws_endpoint = "http://127.0.0.1:5055/"
  }

  assert {
    condition = local.embedded && local.provider_endpoints == tomap({
      ec2 = "http://127.0.0.1:5055", iam = "http://127.0.0.1:5055", s3 = "http://127.0.0.1:5055"
      sns = "http://127.0.0.1:5055", sqs = "http://127.0.0.1:5055", sts = "http://127.0.0.1:5055"
    })
    error_message = "aws_endpoint must send ec2, iam, s3, sns, sqs and sts to the endpoint."
  }
  assert {
    condition     = local.environment.FACEFLEET_AWS_ENDPOINT == "http://127.0.0.1:5055"
    error_message = "The instances' FACEFLEET_AWS_ENDPOINT follows aws_endpoint (without the trailing slash)."
  }
  assert {
    condition     = strcontains(local.worker_install_script, "AWS_ENDPOINT='http://127.0.0.1:5055'")
    error_message = "The install script downloads from the endpoint too."
  }
}

# ---------------------------------------------------------------- everything changed

run "custom" {
  command = apply

  variables {
    name_prefix                = "acme-ff"
    region                     = "eu-west-1"
    visibility_timeout         = 300
    sqs_wait_time              = 20
    max_receives               = 5
    force_destroy              = true
    expire_after_days          = 30
    subnet_id                  = "subnet-0abc"
    worker_public_ip           = false
    key_name                   = "ops"
    device                     = "cuda"
    worker_instance_type       = "g5.xlarge"
    worker_ami                 = "ami-0dl0dl0dl0dl0dl0d"
    torch_index_url            = "https://download.pytorch.org/whl/cu124"
    separate_control_instances = true
    web_ingress_cidrs          = ["203.0.113.0/24"]
    ssh_ingress_cidrs          = ["198.51.100.7/32"]
    extra_environment          = { FACEFLEET_MIN_INSTANCES = "1" }
    tags                       = { team = "vision" }
  }

  assert {
    condition = (aws_s3_bucket.this["input"].bucket == "acme-ff-input" && aws_sqs_queue.requests.name == "acme-ff-requests"
    && aws_sqs_queue.dead_letter.name == "acme-ff-requests-dlq" && alltrue([for b in aws_s3_bucket.this : b.force_destroy]))
    error_message = "Names follow name_prefix; force_destroy follows its variable."
  }
  assert {
    condition = (aws_sqs_queue.requests.visibility_timeout_seconds == 300 && aws_sqs_queue.requests.receive_wait_time_seconds == 20
    && jsondecode(aws_sqs_queue.requests.redrive_policy).maxReceiveCount == 5)
    error_message = "Queue attributes follow the variables."
  }
  assert {
    condition     = toset(keys(aws_s3_bucket_lifecycle_configuration.expire)) == toset(["input", "output"])
    error_message = "expire_after_days adds lifecycle rules to the input and output buckets."
  }
  assert {
    condition     = alltrue([for t in aws_sns_topic.monitoring : !contains(keys(t.tags), "team")]) && aws_s3_bucket.this["input"].tags["team"] == "vision"
    error_message = "var.tags go everywhere except on the topics."
  }
  assert {
    condition = (length(aws_launch_template.worker.network_interfaces) == 1
      && aws_launch_template.worker.network_interfaces[0].subnet_id == "subnet-0abc"
      && aws_launch_template.worker.network_interfaces[0].associate_public_ip_address == "false"
      && toset(aws_launch_template.worker.network_interfaces[0].security_groups) == toset([aws_security_group.worker.id])
    && length(coalesce(aws_launch_template.worker.vpc_security_group_ids, [])) == 0)
    error_message = "With a subnet, subnet and security group go on the template's network interface."
  }
  assert {
    condition     = aws_launch_template.worker.instance_type == "g5.xlarge" && aws_launch_template.worker.image_id == "ami-0dl0dl0dl0dl0dl0d" && aws_launch_template.worker.key_name == "ops"
    error_message = "A GPU type and a driver AMI go into the template as given."
  }
  assert {
    condition     = local.environment.FACEFLEET_DEVICE == "cuda" && local.environment.FACEFLEET_MIN_INSTANCES == "1" && local.environment.AWS_DEFAULT_REGION == "eu-west-1"
    error_message = "device, extra_environment and region reach the environment."
  }
  assert {
    condition     = strcontains(local.worker_install_script, "TORCH_INDEX_URL='https://download.pytorch.org/whl/cu124'")
    error_message = "torch_index_url reaches the install script."
  }
  assert {
    condition = (toset(keys(aws_instance.control)) == toset(["web", "controller"])
      && aws_instance.control["web"].iam_instance_profile == aws_iam_instance_profile.process["web"].name
      && aws_instance.control["controller"].iam_instance_profile == aws_iam_instance_profile.process["controller"].name
      && aws_instance.control["web"].subnet_id == "subnet-0abc"
    && !contains(keys(aws_iam_role.process), "control"))
    error_message = "separate_control_instances: a web and a controller instance, each with its own role only."
  }
  assert {
    condition = (strcontains(local.control_user_data["web"], "facefleet-web.service") && !strcontains(local.control_user_data["web"], "facefleet-controller.service")
    && strcontains(local.control_user_data["controller"], "facefleet-controller.service") && !strcontains(local.control_user_data["controller"], "facefleet-web.service"))
    error_message = "Each control instance runs its own unit only."
  }
  assert {
    condition = toset(flatten([for s in local.controller_policy.Statement : s.Resource if contains(s.Action, "ec2:RunInstances")])) == toset([
      "arn:aws:ec2:eu-west-1:123456789012:instance/*",
      "arn:aws:ec2:eu-west-1:123456789012:volume/*",
      "arn:aws:ec2:eu-west-1:123456789012:network-interface/*",
      aws_launch_template.worker.arn,
      "arn:aws:ec2:eu-west-1::image/ami-0dl0dl0dl0dl0dl0d",
      "arn:aws:ec2:eu-west-1:123456789012:security-group/${aws_security_group.worker.id}",
      "arn:aws:ec2:eu-west-1:123456789012:key-pair/ops",
      "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0abc",
    ])
    error_message = "RunInstances is scoped to this template, AMI, security group, key pair and subnet."
  }
  assert {
    condition = anytrue([for s in local.controller_policy.Statement :
    contains(s.Action, "ec2:RunInstances") && try(s.Condition.StringEquals["ec2:InstanceType"], "") == "g5.xlarge"])
    error_message = "Launches are limited to the template's instance type."
  }
  assert {
    condition = (toset([for r in aws_security_group.control.ingress : r.from_port]) == toset([80, 22])
    && alltrue([for r in aws_security_group.control.ingress : r.cidr_blocks == tolist(r.from_port == 80 ? ["203.0.113.0/24"] : ["198.51.100.7/32"])]))
    error_message = "HTTP and SSH open to the given CIDR blocks only."
  }
  assert {
    condition     = contains(flatten([for s in local.web_policy.Statement : s.Resource]), "arn:aws:sqs:eu-west-1:123456789012:acme-ff-reply-*")
    error_message = "Reply queues follow name_prefix in the policies."
  }
}

# ---------------------------------------------------------------- refused inputs

run "bad_device" {
  command = plan
  variables {
    device = "tpu"
  }
  expect_failures = [var.device]
}

run "bad_endpoint" {
  command = plan
  variables {
    aws_endpoint = "127.0.0.1:5055"
  }
  expect_failures = [var.aws_endpoint]
}

run "missing_archive" {
  command = plan
  variables {
    source_archive = "tests/fixtures/no-such-archive.tar.gz"
  }
  expect_failures = [var.source_archive]
}

run "bad_queue_attributes" {
  command = plan
  variables {
    visibility_timeout = 0
    sqs_wait_time      = 21
    max_receives       = 0
  }
  expect_failures = [var.visibility_timeout, var.sqs_wait_time, var.max_receives]
}

run "environment_quoting" {
  command = plan
  variables {
    extra_environment = { FACEFLEET_API_KEY = "it's" }
  }
  expect_failures = [var.extra_environment]
}

run "environment_override" {
  command = plan
  variables {
    extra_environment = { FACEFLEET_QUEUE = "elsewhere" }
  }
  expect_failures = [aws_launch_template.worker]
}
