# Security groups. Nothing reaches a worker (workers only call out: SQS, S3, SNS, the
# package index at install); the control instance takes HTTP and SSH from the CIDR
# blocks given, none by default.

resource "aws_security_group" "control" {
  name        = "${var.name_prefix}-control"
  description = "facefleet control instance: web tier on port 80, optional SSH"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-control" })

  dynamic "ingress" {
    for_each = length(var.web_ingress_cidrs) > 0 ? [80] : []
    content {
      description = "web tier (gunicorn)"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.web_ingress_cidrs
    }
  }

  dynamic "ingress" {
    for_each = length(var.ssh_ingress_cidrs) > 0 ? [22] : []
    content {
      description = "SSH"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.ssh_ingress_cidrs
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
