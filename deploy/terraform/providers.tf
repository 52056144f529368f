# The one provider. With aws_endpoint set (the embedded AWS, moto's server, in tests),
# every service this module calls goes to that endpoint with moto's fixed dummy
# credentials; empty (the default), the provider talks to real AWS with your usual
# credential chain (environment, profile, SSO, instance role).
provider "aws" {
  region = var.region

  access_key                  = local.embedded ? "testing" : null
  secret_key                  = local.embedded ? "testing" : null
  skip_credentials_validation = local.embedded
  skip_requesting_account_id  = local.embedded
  skip_metadata_api_check     = local.embedded
  s3_use_path_style           = local.embedded

  dynamic "endpoints" {
    for_each = local.embedded ? [local.provider_endpoints] : []
    content {
      ec2 = endpoints.value.ec2
      iam = endpoints.value.iam
      s3  = endpoints.value.s3
      sns = endpoints.value.sns
      sqs = endpoints.value.sqs
      sts = endpoints.value.sts
    }
  }
}
