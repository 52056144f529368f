# What the deployment made, for people (`terraform output`) and tests
# (`terraform output -json`).

output "web_url" {
  description = "URL of the web tier (reachable from web_ingress_cidrs only)."
  value = format("http://%s/", coalesce(
    aws_instance.control[local.web_instance].public_dns,
    aws_instance.control[local.web_instance].public_ip,
    aws_instance.control[local.web_instance].private_ip,
  ))
}

output "control_instances" {
  description = "The control instance(s): id, addresses and the process roles each runs."
  value = {
    for name, inst in aws_instance.control : name => {
      id         = inst.id
      public_ip  = inst.public_ip
      private_ip = inst.private_ip
      profile    = inst.iam_instance_profile
      units      = local.control_instances[name].units
    }
  }
}

output "buckets" {
  description = "The buckets by use: name and ARN."
  value = {
    for k, b in aws_s3_bucket.this : k => { name = b.bucket, arn = b.arn }
  }
}

output "queues" {
  description = "The request queue and its dead-letter queue: name, URL and ARN."
  value = {
    requests    = { name = aws_sqs_queue.requests.name, url = aws_sqs_queue.requests.url, arn = aws_sqs_queue.requests.arn }
    dead_letter = { name = aws_sqs_queue.dead_letter.name, url = aws_sqs_queue.dead_letter.url, arn = aws_sqs_queue.dead_letter.arn }
  }
}

output "topics" {
  description = "The monitoring transport's SNS topics (pidbox: remote control, events: Celery events): name and ARN."
  value = {
    for k, t in aws_sns_topic.monitoring : k => { name = t.name, arn = t.arn }
  }
}

output "launch_template_id" {
  description = "The worker launch template (FACEFLEET_LAUNCH_TEMPLATE of the controller)."
  value       = aws_launch_template.worker.id
}

output "launch_template" {
  description = "The worker launch template: id, ARN, default version."
  value = {
    id              = aws_launch_template.worker.id
    arn             = aws_launch_template.worker.arn
    default_version = aws_launch_template.worker.default_version
  }
}

output "roles" {
  description = "IAM role and instance profile per process role (and \"control\", the control instance's, unless separate_control_instances): names, ARNs and attached policies."
  value = {
    for k, r in aws_iam_role.process : k => {
      role     = r.name
      role_arn = r.arn
      profile  = aws_iam_instance_profile.process[k].name
      policies = local.role_policies[k]
    }
  }
}

output "iam_policies" {
  description = "Each process role's policy document as JSON: web, worker, controller."
  value       = { for k, p in local.policies : k => jsonencode(p) }
}

output "environment" {
  description = "The environment file of each instance kind (/etc/facefleet/facefleet.env): worker, and control (the worker's plus the controller's launch template and the web bind address)."
  value = {
    worker  = local.environment
    control = local.control_environment
  }
}

output "weights" {
  description = "The uploaded weights: s3:// URI (FACEFLEET_WEIGHTS), sha256 and object metadata."
  value = {
    uri      = local.weights_uri
    sha256   = local.weights_sha256
    metadata = local.weights_metadata
  }
}

output "release" {
  description = "The uploaded source archive: sha256 and S3 key (instances install it)."
  value = {
    sha256 = local.source_sha256
    key    = local.source_key
    uri    = "s3://${local.buckets.model}/${local.source_key}"
  }
}

output "install_script" {
  description = "The worker install script, for baking an AMI (README.md, Baking an AMI): run it as `sudo bash install.sh bake` in a builder instance."
  value       = local.worker_install_script
}

output "user_data" {
  description = "The rendered cloud-init user data: worker, and one per control instance."
  value = {
    worker  = local.worker_user_data
    control = local.control_user_data
  }
}
