# The worker launch template (the controller launches every worker from it; Terraform
# never manages a worker instance) and the control instance(s) running the web tier and
# the controller. Both boot from cloud-init user data into the systemd units of
# deploy/systemd/.

locals {
  systemd_dir = "${path.module}/../systemd"
  units = {
    worker     = ["facefleet-worker.service", "facefleet-spot-watch.service"]
    web        = ["facefleet-web.service"]
    controller = ["facefleet-controller.service"]
  }

  # What runs where: one control instance with both process roles, or one each.
  control_instances = var.separate_control_instances ? {
    web        = { role = "web", units = local.units.web }
    controller = { role = "controller", units = local.units.controller }
    } : {
    control = { role = "control", units = concat(local.units.web, local.units.controller) }
  }
  web_instance      = var.separate_control_instances ? "web" : "control"
  control_subnet_id = var.control_subnet_id != "" ? var.control_subnet_id : var.subnet_id

  # The env file: KEY='value' per line, sorted. Single quotes mean the same to systemd's
  # EnvironmentFile= and to a shell; values never hold one (variable validation).
  # Worker and control locals stay apart: the control ones contain the launch
  # template's id, and the template contains the worker ones.
  worker_env_file  = join("\n", [for k in sort(keys(local.environment)) : "${k}='${local.environment[k]}'"])
  control_env_file = join("\n", [for k in sort(keys(local.control_environment)) : "${k}='${local.control_environment[k]}'"])

  # The install steps, one script for every instance kind (and for baking an AMI).
  install_script_vars = {
    release_bucket  = local.buckets.model
    release_key     = local.source_key
    release_sha256  = local.source_sha256
    weights_uri     = local.weights_uri
    aws_endpoint    = local.embedded ? local.endpoint : ""
    region          = var.region
    python          = var.python
    torch_index_url = var.torch_index_url
  }
  worker_install_script = templatefile("${path.module}/templates/install.sh.tftpl", merge(local.install_script_vars, {
    units = local.units.worker, fetch_weights = true
  }))
  control_install_scripts = {
    for name, inst in local.control_instances : name => templatefile("${path.module}/templates/install.sh.tftpl", merge(local.install_script_vars, {
      units = inst.units, fetch_weights = false
    }))
  }

  worker_user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    kind           = "worker"
    env_file       = local.worker_env_file
    install_script = chomp(local.worker_install_script)
    units          = { for u in local.units.worker : u => chomp(file("${local.systemd_dir}/${u}")) }
  })
  control_user_data = {
    for name, inst in local.control_instances : name => templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
      kind           = name
      env_file       = local.control_env_file
      install_script = chomp(local.control_install_scripts[name])
      units          = { for u in inst.units : u => chomp(file("${local.systemd_dir}/${u}")) }
    })
  }
}

resource "aws_launch_template" "worker" {
  name        = "${var.name_prefix}-worker"
  description = "facefleet workers, launched by the controller (release ${substr(local.source_sha256, 0, 12)})"

  image_id      = local.worker_ami
  instance_type = var.worker_instance_type
  key_name      = var.key_name != "" ? var.key_name : null
  user_data     = base64encode(local.worker_user_data)
  # New versions become the default: the controller launches "$Default".
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.process["worker"].arn
  }

  # Without a subnet the security group goes here and EC2 picks a default subnet; with
  # one, both go on the network interface.
  vpc_security_group_ids = var.subnet_id == "" ? [aws_security_group.worker.id] : null

  dynamic "network_interfaces" {
    for_each = var.subnet_id == "" ? [] : [var.subnet_id]
    content {
      device_index                = 0
      subnet_id                   = network_interfaces.value
      security_groups             = [aws_security_group.worker.id]
      associate_public_ip_address = var.worker_public_ip == null ? null : tostring(var.worker_public_ip)
      delete_on_termination       = "true"
    }
  }

  # IMDSv2 only; the instance's tags in the metadata (the worker names itself after its
  # Name tag: deploy/node.py).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  block_device_mappings {
    device_name = local.worker_root_device
    ebs {
      volume_size           = var.worker_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  # The controller tags each instance itself (Name, facefleet:role, slot, generation,
  # origin: autoscaler/ec2.py); the template tags the volumes, and adds var.tags to
  # instances.
  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { "facefleet:role" = var.worker_role_tag })
  }

  dynamic "tag_specifications" {
    for_each = length(var.tags) > 0 ? [var.tags] : []
    content {
      resource_type = "instance"
      tags          = tag_specifications.value
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(local.overridden_environment) == 0
      error_message = "extra_environment sets ${join(", ", sort(local.overridden_environment))}, which this module sets itself: use the matching variable instead (README.md, Variables)."
    }
    precondition {
      condition     = length(local.worker_user_data) <= 16384
      error_message = "The worker user data is ${length(local.worker_user_data)} bytes, above EC2's 16 KiB limit."
    }
    precondition {
      condition     = !contains(["control", "web", "controller"], var.worker_role_tag)
      error_message = "worker_role_tag must not name a control role."
    }
  }

  # Instances boot from the release and the weights.
  depends_on = [aws_s3_object.source, aws_s3_object.weights]
}

resource "aws_instance" "control" {
  for_each = local.control_instances

  ami                         = local.control_ami
  instance_type               = var.control_instance_type
  subnet_id                   = local.control_subnet_id != "" ? local.control_subnet_id : null
  vpc_security_group_ids      = [aws_security_group.control.id]
  iam_instance_profile        = aws_iam_instance_profile.process[each.value.role].name
  key_name                    = var.key_name != "" ? var.key_name : null
  associate_public_ip_address = var.control_public_ip
  user_data                   = local.control_user_data[each.key]
  # A new release (or environment) is a new instance: cloud-init runs once per instance.
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  root_block_device {
    volume_size           = var.control_volume_size
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags        = merge(local.tags, { Name = "${var.name_prefix}-${each.key}", "facefleet:control" = each.key })
  volume_tags = merge(local.tags, { Name = "${var.name_prefix}-${each.key}" })

  lifecycle {
    # The looked-up AMI changes whenever Amazon publishes one; moving the control
    # instance is your call: terraform apply -replace='aws_instance.control["control"]'.
    ignore_changes = [ami]
    precondition {
      condition     = length(local.control_user_data[each.key]) <= 16384
      error_message = "The control user data is above EC2's 16 KiB limit."
    }
  }

  # Boot only once the release, the weights and the role's policies are there.
  depends_on = [aws_s3_object.source, aws_s3_object.weights, aws_iam_role_policy_attachment.process]
}
