# Terraform and provider requirements of the facefleet root module.
#
# State: no backend is configured here on purpose, so the state is local
# (terraform.tfstate in this folder, ignored by git) until you choose one. For a team,
# keep it in S3 with locking: create a file backend.tf next to this one (not
# committed, or committed in your fork) holding
#
#   terraform {
#     backend "s3" {
#       bucket       = "my-terraform-state"        # an existing, versioned bucket
#       key          = "facefleet/terraform.tfstate"
#       region       = "us-east-1"
#       use_lockfile = true                        # S3 native locking (Terraform >= 1.10)
#       encrypt      = true
#     }
#   }
#
# then run `terraform init -migrate-state`. See README.md, "State".
terraform {
  # mock_provider in the tests needs 1.7.
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
