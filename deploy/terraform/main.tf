# Names, ARNs and the environment of the processes, derived once from the variables.
#
# ARNs are built from names rather than read back from the resources, so every
# policy is known at plan time (plan output, `terraform test` with a mocked
# provider). A policy may name a resource before it exists: IAM does not check.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The workers' VPC: the subnet's when one is given, else the default VPC.
data "aws_subnet" "worker" {
  count = var.subnet_id == "" ? 0 : 1
  id    = var.subnet_id
}

data "aws_vpc" "default" {
  count   = var.subnet_id == "" ? 1 : 0
  default = true
}

# Amazon Linux 2023 (not the minimal image), the newest for the architecture, unless
# an AMI is given.
data "aws_ami" "al2023" {
  count       = var.worker_ami == "" || var.control_ami == "" ? 1 : 0
  owners      = ["amazon"]
  most_recent = true

  filter {
    name   = "name"
    values = ["al2023-ami-2023.*-${var.ami_architecture}"]
  }

  filter {
    name   = "architecture"
    values = [var.ami_architecture]
  }
}

# The worker AMI's root device name, for the launch template's root volume.
data "aws_ami" "worker" {
  count = var.worker_ami == "" ? 0 : 1

  filter {
    name   = "image-id"
    values = [var.worker_ami]
  }
}

locals {
  embedded = var.aws_endpoint != ""
  endpoint = trimsuffix(var.aws_endpoint, "/")
  # What the provider block sends where (providers.tf); a local so tests can see it.
  provider_endpoints = local.embedded ? {
    for service in ["ec2", "iam", "s3", "sns", "sqs", "sts"] : service => local.endpoint
  } : {}

  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  account_id = data.aws_caller_identity.current.account_id
  region     = var.region
  vpc_id     = var.subnet_id == "" ? data.aws_vpc.default[0].id : data.aws_subnet.worker[0].vpc_id

  tags = merge({ "facefleet:deployment" = var.name_prefix }, var.tags)

  # ---- names (defaults = the code's defaults with name_prefix "facefleet")
  buckets = {
    input  = coalesce(var.input_bucket, "${var.name_prefix}-input")
    output = coalesce(var.output_bucket, "${var.name_prefix}-output")
    model  = coalesce(var.model_bucket, "${var.name_prefix}-models")
  }
  queue_name         = coalesce(var.queue_name, "${var.name_prefix}-requests")
  dlq_name           = coalesce(var.dead_letter_queue_name, "${var.name_prefix}-requests-dlq")
  reply_queue_prefix = coalesce(var.reply_queue_prefix, "${var.name_prefix}-reply-")
  # SQS keeps a message at most 14 days; dead letters are kept that long
  # (deploy/provision.py, DLQ_RETENTION).
  dlq_retention_seconds = 14 * 24 * 3600

  # Celery's exchange names made SQS/SNS-legal by the transport
  # (kombu's canonical_queue_name: "celery.pidbox" -> "celery-pidbox"). Fixed by
  # Celery, not by name_prefix: one deployment per account and region.
  topics = {
    pidbox = "celery-pidbox"
    events = "celeryev"
  }
  # The tags kombu's SNS fanout creates its topics with (kombu/transport/SQS/SNS.py,
  # _create_sns_topic). SNS refuses a CreateTopic for an existing topic with other
  # tags, and every process calls CreateTopic at start-up: the topics carry exactly these.
  topic_tags = {
    ManagedBy   = "Celery/Kombu"
    Description = "This SNS topic is used by Kombu to enable Fanout support for AWS SQS."
  }

  role_names = {
    web        = "${var.name_prefix}-web"
    worker     = "${var.name_prefix}-worker"
    controller = "${var.name_prefix}-controller"
    control    = "${var.name_prefix}-control"
  }

  # ---- what is deployed
  source_sha256  = filesha256(var.source_archive)
  source_key     = "releases/${local.source_sha256}.tar.gz"
  weights_sha256 = filesha256(var.weights_file)
  # deploy/provision.py: f"{WEIGHTS_PREFIX}{info.name}-{info.sha256[:16]}.pt"
  weights_key = "weights/${var.weights_name}-${substr(local.weights_sha256, 0, 16)}.pt"
  weights_uri = "s3://${local.buckets.model}/${local.weights_key}"
  # recognition/weights/registry.py, upload_weights: the metadata _ensure_s3 checks.
  weights_metadata = merge(
    {
      "sha256"        = local.weights_sha256
      "embedding-dim" = tostring(var.weights_embedding_dim)
    },
    var.weights_model == "" ? {} : { "facefleet-model" = var.weights_model },
    length(var.weights_module_overrides) == 0 ? {} : {
      "module-overrides" = jsonencode(var.weights_module_overrides)
    },
  )

  # ---- ARNs
  bucket_arns = { for k, name in local.buckets : k => "arn:${local.partition}:s3:::${name}" }
  sqs_arn     = "arn:${local.partition}:sqs:${local.region}:${local.account_id}"
  queue_arn   = "${local.sqs_arn}:${local.queue_name}"
  dlq_arn     = "${local.sqs_arn}:${local.dlq_name}"
  reply_arns  = "${local.sqs_arn}:${local.reply_queue_prefix}*"
  monitor_arn = "${local.sqs_arn}:${var.monitor_queue_prefix}*"
  topic_arns = {
    for k, name in local.topics : k => "arn:${local.partition}:sns:${local.region}:${local.account_id}:${name}"
  }
  ec2_arn            = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
  worker_role_arn    = "arn:${local.partition}:iam::${local.account_id}:role/${local.role_names.worker}"
  launch_template_id = aws_launch_template.worker.id

  worker_ami  = var.worker_ami != "" ? var.worker_ami : data.aws_ami.al2023[0].id
  control_ami = var.control_ami != "" ? var.control_ami : data.aws_ami.al2023[0].id
  worker_root_device = (var.worker_ami != "" ? data.aws_ami.worker[0].root_device_name
  : data.aws_ami.al2023[0].root_device_name)

  # ---- the environment of the processes (/etc/facefleet/facefleet.env)
  # Every name is checked against docs/configuration.md by tests/deploy/test_terraform.py.
  # Workers get `environment`; the control instance adds what only the controller and
  # the web tier read (the launch template id cannot be in the workers' own user data:
  # the template would contain itself).
  managed_environment = {
    FACEFLEET_AWS_ENDPOINT       = local.embedded ? local.endpoint : "aws"
    AWS_DEFAULT_REGION           = var.region
    FACEFLEET_INPUT_BUCKET       = local.buckets.input
    FACEFLEET_OUTPUT_BUCKET      = local.buckets.output
    FACEFLEET_MODEL_BUCKET       = local.buckets.model
    FACEFLEET_QUEUE              = local.queue_name
    FACEFLEET_DLQ                = local.dlq_name
    FACEFLEET_MAX_RECEIVES       = tostring(var.max_receives)
    FACEFLEET_VISIBILITY_TIMEOUT = tostring(var.visibility_timeout)
    # Workers extend the messages they hold three times per timeout (at most half of it).
    FACEFLEET_VISIBILITY_EXTEND_EVERY = tostring(var.visibility_timeout / 3)
    FACEFLEET_SQS_WAIT_TIME           = tostring(var.sqs_wait_time)
    FACEFLEET_WEIGHTS                 = local.weights_uri
    FACEFLEET_GALLERY                 = "s3://${local.buckets.model}/${var.gallery_key}"
    FACEFLEET_DEVICE                  = var.device
    FACEFLEET_CACHE                   = "/var/cache/facefleet"
    FACEFLEET_FLEET_STATE_KEY         = var.fleet_state_key
    FACEFLEET_REPLY_QUEUE_PREFIX      = local.reply_queue_prefix
    FACEFLEET_MONITOR_QUEUE_PREFIX    = var.monitor_queue_prefix
    FACEFLEET_ROLE                    = var.worker_role_tag
    FACEFLEET_MAX_INSTANCES           = tostring(var.max_instances)
  }
  control_only_environment = {
    FACEFLEET_LAUNCH_TEMPLATE = local.launch_template_id
    FACEFLEET_WEB_BIND        = "0.0.0.0:80"
  }
  environment         = merge(var.extra_environment, local.managed_environment)
  control_environment = merge(local.environment, local.control_only_environment)

  # extra_environment may not change what this module sets (checked by a precondition
  # of the launch template).
  module_environment_keys = concat(keys(local.managed_environment), ["FACEFLEET_LAUNCH_TEMPLATE", "FACEFLEET_WEB_BIND"])
  overridden_environment  = setintersection(keys(var.extra_environment), local.module_environment_keys)
}
