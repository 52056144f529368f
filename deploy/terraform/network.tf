# Security groups. Nothing reaches a worker (workers only call out: SQS, S3, SNS, the
# package index at install); the control instance takes HTTP and SSH from the CIDR
# blocks given, none by default.

locals {
  control_ingress = {
    "80" = { description = "web tier (gunicorn)", cidrs = var.web_ingress_cidrs }
    "22" = { description = "SSH", cidrs = var.ssh_ingress_cidrs }
  }
}

resource "aws_security_group" "control" {
  name        = "${var.name_prefix}-control"
  description = "facefleet control instance: web tier on port 80, optional SSH"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-control" })

  # One rule per port whose CIDR list is not empty.
  dynamic "ingress" {
    for_each = { for port, rule in local.control_ingress : port => rule if length(rule.cidrs) > 0 }
    content {
      description = ingress.value.description
      from_port   = tonumber(ingress.key)
      to_port     = tonumber(ingress.key)
      protocol    = "tcp"
      cidr_blocks = ingress.value.cidrs
    }
  }

  egress {
    description      = "everything out (AWS APIs, package index)"
    from_port        = 0
    to_port          = 0
    protocol         = "-1"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }
}

resource "aws_security_group" "worker" {
  name        = "${var.name_prefix}-worker"
  description = "facefleet workers: no inbound traffic"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-worker" })

  egress {
    description      = "everything out (AWS APIs, package index)"
    from_port        = 0
    to_port          = 0
    protocol         = "-1"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }
}
