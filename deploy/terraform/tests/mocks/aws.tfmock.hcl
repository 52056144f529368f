# Values the mocked aws provider returns in `terraform test`: moto's account, a real
# partition, and recognisable ids, so assertions can compare whole ARNs.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/terraform"
    user_id    = "AIDATERRAFORMTEST"
  }
}

mock_data "aws_partition" {
  defaults = {
    id                 = "aws"
    partition          = "aws"
    dns_suffix         = "amazonaws.com"
    reverse_dns_prefix = "com.amazonaws"
  }
}

mock_data "aws_vpc" {
  defaults = {
    id = "vpc-0defa017"
  }
}

mock_data "aws_subnet" {
  defaults = {
    vpc_id = "vpc-0c057011"
  }
}

mock_data "aws_ami" {
  defaults = {
    id               = "ami-0a12023a12023a120"
    root_device_name = "/dev/xvda"
  }
}

mock_resource "aws_launch_template" {
  defaults = {
    id              = "lt-0123456789abcdef0"
    arn             = "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-0123456789abcdef0"
    default_version = 1
  }
}

mock_resource "aws_security_group" {
  defaults = {
    id = "sg-0123456789abcdef0"
  }
}

mock_resource "aws_iam_instance_profile" {
  defaults = {
    arn = "arn:aws:iam::123456789012:instance-profile/mocked"
  }
}

mock_resource "aws_instance" {
  defaults = {
    public_dns = "ec2-203-0-113-10.compute-1.amazonaws.com"
    public_ip  = "203.0.113.10"
    private_ip = "172.31.0.10"
  }
}

# The provider validates ARN attributes it reads back: mocks must look like ARNs.
mock_resource "aws_iam_policy" {
  defaults = {
    arn = "arn:aws:iam::123456789012:policy/mocked"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/mocked"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:us-east-1:123456789012:mocked"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/mocked"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:us-east-1:123456789012:mocked"
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::mocked"
  }
}
