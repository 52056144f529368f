# One IAM role per process role (web tier, worker, controller), each allowed only the
# actions that process calls, on the resources it touches. The three policy documents
# are the locals web_policy, worker_policy and controller_policy below: one readable
# place per role, rendered as the output iam_policies, checked by the tests
# (tests/*.tftest.hcl here; the end-to-end test records every call each process makes
# and checks it against these documents).
#
# IAM action names, not API operation names: DeleteMessageBatch is authorised by
# sqs:DeleteMessage, PublishBatch by sns:Publish, HeadObject by s3:GetObject and
# ListObjectsV2 by s3:ListBucket. Resource "*" only where IAM cannot scope the action
# (sqs:ListQueues, ec2:DescribeInstances).
#
# The control instance runs two process roles; see the role "control" at the end and
# README.md, "The control instance's roles".

locals {
  # ---- Celery's monitoring transport (docs/monitoring.md, "IAM actions monitoring
  # needs"). Every process that uses it (workers, the web tier's dashboard, the
  # controller's idle probe) is a caller: it sends broadcasts through the topics,
  # reads answers on a reply queue of its own, and sweeps the monitoring queues and
  # subscriptions of processes that died.
  monitoring_caller_statements = [
    {
      Sid    = "MonitoringQueues"
      Effect = "Allow"
      Action = [
        "sqs:CreateQueue",
        "sqs:DeleteMessage",
        "sqs:DeleteQueue",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ListQueueTags",
        "sqs:ReceiveMessage",
        # CreateQueue with tags needs TagQueue too; the owner refreshes a last-seen tag.
        "sqs:TagQueue",
      ]
      Resource = [local.monitor_arn]
    },
    {
      # Sweeps of expired monitoring queues and stale reply queues list by name
      # prefix; IAM cannot scope ListQueues.
      Sid      = "ListQueues"
      Effect   = "Allow"
      Action   = ["sqs:ListQueues"]
      Resource = ["*"]
    },
    {
      Sid    = "MonitoringTopics"
      Effect = "Allow"
      Action = [
        # Every process declares the exchanges: CreateTopic answers the existing
        # topic's ARN. It passes tags, which needs TagResource.
        "sns:CreateTopic",
        "sns:ListSubscriptionsByTopic",
        "sns:Publish",
        "sns:TagResource",
      ]
      Resource = values(local.topic_arns)
    },
    {
      # A sweep unsubscribes the queues of dead listeners. IAM has no resource type
      # for Unsubscribe: it is granted on "*" or not at all.
      Sid      = "MonitoringUnsubscribe"
      Effect   = "Allow"
      Action   = ["sns:Unsubscribe"]
      Resource = ["*"]
    },
  ]

  # Listeners (a worker's remote-control queue, the dashboard's event queue) also
  # subscribe a queue of their own to a topic, and let the topic deliver to it.
  monitoring_listener_statements = [
    {
      Sid      = "MonitoringSubscribe"
      Effect   = "Allow"
      Action   = ["sns:Subscribe"]
      Resource = values(local.topic_arns)
    },
    {
      # kombu puts a queue policy letting the topic deliver to the queue.
      Sid      = "MonitoringQueuePolicy"
      Effect   = "Allow"
      Action   = ["sqs:SetQueueAttributes"]
      Resource = [local.monitor_arn]
    },
  ]

  # ---- every instance role: the install (templates/install.sh.tftpl) downloads the
  # deployed release, and only that one.
  install_statements = [
    {
      Sid      = "ReadRelease"
      Effect   = "Allow"
      Action   = ["s3:GetObject"]
      Resource = ["${local.bucket_arns.model}/${local.source_key}"]
    },
  ]

  # ---- the web tier (webapp/, tasks/client.py, tasks/completion.py)
  web_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        # Uploads <request id>/<file name> and enrolment photos enrol/<id>/...
        Sid      = "PutUploads"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = ["${local.bucket_arns.input}/*"]
      },
      {
        # The input bucket is listed by prefix to tell an unknown request id from a
        # pending one. On the others ListBucket only makes S3 answer 404 (NoSuchKey)
        # for a missing key instead of 403: a result not there yet, no fleet state
        # yet, no gallery yet.
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = values(local.bucket_arns)
      },
      {
        Sid      = "ReadResultsAndFleetState"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bucket_arns.output}/results/*", "${local.bucket_arns.output}/${var.fleet_state_key}"]
      },
      {
        # Listing and removing identities reads and rewrites the gallery
        # (conditional writes: If-Match / If-None-Match).
        Sid      = "ReadWriteGallery"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = ["${local.bucket_arns.model}/${var.gallery_key}"]
      },
      {
        # Submitting tasks; GetQueueUrl once at start, GetQueueAttributes for the
        # queue depth (/healthz, /api/v1/fleet, the dashboard).
        Sid      = "SubmitTasks"
        Effect   = "Allow"
        Action   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]
        Resource = [local.queue_arn]
      },
      {
        # Each web process owns one completion-signal queue: created with tags,
        # long-polled, heart-beaten by a tag, deleted at exit; stale ones are reaped
        # by tag.
        Sid    = "ReplyQueues"
        Effect = "Allow"
        Action = [
          "sqs:CreateQueue",
          "sqs:DeleteMessage",
          "sqs:DeleteQueue",
          "sqs:ListQueueTags",
          "sqs:ReceiveMessage",
          "sqs:TagQueue",
        ]
        Resource = [local.reply_arns]
      },
      ], local.monitoring_caller_statements, local.monitoring_listener_statements,
    local.install_statements)
  }

  # ---- a worker (tasks/, recognition/, deploy/node.py)
  worker_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        # The images and enrolment photos named by tasks.
        Sid      = "ReadImages"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bucket_arns.input}/*"]
      },
      {
        # Label objects at the root (key: the uploaded file's stem) and Celery
        # results under results/.
        Sid      = "WriteLabelsAndResults"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = ["${local.bucket_arns.output}/*"]
      },
      {
        # Celery reads a task's stored state before it writes a failure (a success
        # is never replaced).
        Sid      = "ReadResults"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bucket_arns.output}/results/*"]
      },
      {
        # Weights (downloaded once, checked against their sha256) and the gallery
        # (read, and its ETag checked before tasks).
        Sid      = "ReadWeightsAndGallery"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bucket_arns.model}/weights/*", "${local.bucket_arns.model}/${var.gallery_key}"]
      },
      {
        # Enrolment rewrites the gallery (conditional writes).
        Sid      = "WriteGallery"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = ["${local.bucket_arns.model}/${var.gallery_key}"]
      },
      {
        # 404 instead of 403 for a missing image, result or gallery.
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = values(local.bucket_arns)
      },
      {
        # Consuming (long polls), acknowledging, and releasing a lost run's message
        # for redelivery (ChangeMessageVisibility).
        Sid    = "ConsumeTasks"
        Effect = "Allow"
        Action = [
          "sqs:ChangeMessageVisibility",
          "sqs:DeleteMessage",
          "sqs:GetQueueAttributes",
          "sqs:GetQueueUrl",
          "sqs:ReceiveMessage",
        ]
        Resource = [local.queue_arn]
      },
      {
        # The completion signal to the submitting web process's queue, and the answers
        # to inspect and control calls to the caller's monitoring reply queue.
        Sid      = "SignalCompletionAndAnswer"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [local.reply_arns, local.monitor_arn]
      },
      ], local.monitoring_caller_statements, local.monitoring_listener_statements,
    local.install_statements)
  }

  # ---- the controller (autoscaler/)
  # RunInstances is authorised per resource it touches; each is scoped: the worker
  # launch template, the workers' AMI, security group and subnet(s), and new
  # instances/volumes/interfaces only when launched from that template.
  worker_subnet_arns = (var.subnet_id != ""
    ? ["${local.ec2_arn}:subnet/${var.subnet_id}"]
  : ["${local.ec2_arn}:subnet/*"])
  controller_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        # The queue depth (visible + in flight + delayed).
        Sid      = "ReadQueueDepth"
        Effect   = "Allow"
        Action   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
        Resource = [local.queue_arn]
      },
      {
        # The published fleet state, and only that key.
        Sid      = "PublishFleetState"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = ["${local.bucket_arns.output}/${var.fleet_state_key}"]
      },
      {
        # Listing the fleet by tag filter; EC2 cannot scope Describe* calls.
        Sid      = "DescribeInstances"
        Effect   = "Allow"
        Action   = ["ec2:DescribeInstances"]
        Resource = ["*"]
      },
      {
        # A new worker: only from the worker template, only of the template's
        # instance type, only tagged as a worker (the controller's TagSpecifications).
        Sid      = "LaunchWorkerInstances"
        Effect   = "Allow"
        Action   = ["ec2:RunInstances"]
        Resource = ["${local.ec2_arn}:instance/*"]
        Condition = {
          ArnEquals = { "ec2:LaunchTemplate" = aws_launch_template.worker.arn }
          StringEquals = {
            "aws:RequestTag/facefleet:role" = var.worker_role_tag
            "ec2:InstanceType"              = var.worker_instance_type
          }
        }
      },
      {
        Sid      = "LaunchWorkerVolumesAndInterfaces"
        Effect   = "Allow"
        Action   = ["ec2:RunInstances"]
        Resource = ["${local.ec2_arn}:volume/*", "${local.ec2_arn}:network-interface/*"]
        Condition = {
          ArnEquals = { "ec2:LaunchTemplate" = aws_launch_template.worker.arn }
        }
      },
      {
        # What a launch reads: the template, the AMI, the security group, the key pair.
        Sid    = "LaunchWorkerFrom"
        Effect = "Allow"
        Action = ["ec2:RunInstances"]
        Resource = concat(
          [
            aws_launch_template.worker.arn,
            "arn:${local.partition}:ec2:${local.region}::image/${local.worker_ami}",
            "${local.ec2_arn}:security-group/${aws_security_group.worker.id}",
          ],
          var.key_name != "" ? ["${local.ec2_arn}:key-pair/${var.key_name}"] : [],
        )
      },
      {
        # The subnet: the given one, or any subnet of the workers' VPC (default
        # subnets, one per zone).
        Sid      = "LaunchWorkerIntoSubnet"
        Effect   = "Allow"
        Action   = ["ec2:RunInstances"]
        Resource = local.worker_subnet_arns
        Condition = {
          ArnEquals = { "ec2:Vpc" = "${local.ec2_arn}:vpc/${local.vpc_id}" }
        }
      },
      {
        # Tags in the launch request (instance) and the template (volume).
        Sid      = "TagOnLaunch"
        Effect   = "Allow"
        Action   = ["ec2:CreateTags"]
        Resource = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*", "${local.ec2_arn}:network-interface/*"]
        Condition = {
          StringEquals = { "ec2:CreateAction" = "RunInstances" }
        }
      },
      {
        # Before a start the controller marks a worker facefleet:origin=start; it may
        # set that key only, on workers only.
        Sid      = "MarkWorkerStarts"
        Effect   = "Allow"
        Action   = ["ec2:CreateTags"]
        Resource = ["${local.ec2_arn}:instance/*"]
        Condition = {
          StringEquals                = { "aws:ResourceTag/facefleet:role" = var.worker_role_tag }
          "ForAllValues:StringEquals" = { "aws:TagKeys" = ["facefleet:origin"] }
        }
      },
      {
        Sid      = "StartStopTerminateWorkers"
        Effect   = "Allow"
        Action   = ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]
        Resource = ["${local.ec2_arn}:instance/*"]
        Condition = {
          StringEquals = { "aws:ResourceTag/facefleet:role" = var.worker_role_tag }
        }
      },
      {
        # The template's instance profile hands the worker role to new instances.
        Sid      = "PassWorkerRole"
        Effect   = "Allow"
        Action   = ["iam:PassRole"]
        Resource = [local.worker_role_arn]
        Condition = {
          StringEquals = { "iam:PassedToService" = "ec2.${local.dns_suffix}" }
        }
      },
    ], local.monitoring_caller_statements, local.install_statements)
  }

  policies = {
    web        = local.web_policy
    worker     = local.worker_policy
    controller = local.controller_policy
  }

  # Which managed policies each role carries. "control" is the control instance's
  # role when one instance runs both the web tier and the controller.
  role_policies = merge(
    { web = ["web"], worker = ["worker"], controller = ["controller"] },
    var.separate_control_instances ? {} : { control = ["web", "controller"] },
  )
  role_policy_pairs = {
    for pair in flatten([
      for role, names in local.role_policies : [for name in names : { role = role, policy = name }]
    ]) : "${pair.role}/${pair.policy}" => pair
  }

  ec2_trust_policy = {
    Version = "2012-10-17"
    Statement = [{
      Sid       = "Ec2AssumesRole"
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.${local.dns_suffix}" }
    }]
  }
}

resource "aws_iam_policy" "process" {
  for_each = local.policies

  name        = "${var.name_prefix}-${each.key}"
  description = "facefleet ${each.key}: only the AWS calls this process makes (deploy/terraform/iam.tf)."
  policy      = jsonencode(each.value)
  tags        = local.tags
}

resource "aws_iam_role" "process" {
  for_each = local.role_policies

  name               = local.role_names[each.key]
  description        = "facefleet ${each.key} instances (${join(" + ", each.value)} policies)."
  assume_role_policy = jsonencode(local.ec2_trust_policy)
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "process" {
  for_each = local.role_policy_pairs

  role       = aws_iam_role.process[each.value.role].name
  policy_arn = aws_iam_policy.process[each.value.policy].arn
}

resource "aws_iam_instance_profile" "process" {
  for_each = aws_iam_role.process

  name = each.value.name
  role = each.value.name
  tags = local.tags
}
