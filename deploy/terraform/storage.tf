# The three buckets (what `python -m deploy.provision` creates, plus public access
# blocked and default encryption), and the objects Terraform uploads: the release
# archive and the weights. The gallery object is not Terraform's: the first enrolment
# writes it (conditionally, If-None-Match), and a missing gallery reads as empty.

resource "aws_s3_bucket" "this" {
  for_each = local.buckets

  bucket        = each.value
  force_destroy = var.force_destroy
  tags          = merge(local.tags, { "facefleet:bucket" = each.key })
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# The model bucket keeps every version of the weights and of the gallery.
resource "aws_s3_bucket_versioning" "model" {
  bucket = aws_s3_bucket.this["model"].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "expire" {
  for_each = var.expire_after_days > 0 ? { input = "", output = "results/" } : {}

  bucket = aws_s3_bucket.this[each.key].id
  rule {
    id     = "expire-${each.key == "input" ? "uploads" : "results"}"
    status = "Enabled"
    filter {
      prefix = each.value
    }
    expiration {
      days = var.expire_after_days
    }
  }
}

# The source archive of the deployed version, by content: a new archive is a new key,
# so instances never install a half-replaced release.
resource "aws_s3_object" "source" {
  bucket       = aws_s3_bucket.this["model"].id
  key          = local.source_key
  source       = var.source_archive
  source_hash  = local.source_sha256
  content_type = "application/gzip"
  metadata     = { sha256 = local.source_sha256 }
  tags         = local.tags

  depends_on = [aws_s3_bucket_versioning.model, aws_s3_bucket_server_side_encryption_configuration.this]
}

# The weights, with the metadata recognition.weights.upload_weights writes; workers
# download them once and refuse a file whose sha256 differs from the recorded one.
resource "aws_s3_object" "weights" {
  bucket       = aws_s3_bucket.this["model"].id
  key          = local.weights_key
  source       = var.weights_file
  source_hash  = local.weights_sha256
  content_type = "application/octet-stream"
  metadata     = local.weights_metadata
  tags         = local.tags

  depends_on = [aws_s3_bucket_versioning.model, aws_s3_bucket_server_side_encryption_configuration.this]
}
