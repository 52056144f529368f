# The request queue and its dead-letter queue, with exactly the attributes
# deploy/provision.py sets (request_queue_attributes and DLQ_RETENTION), and the two
# SNS topics of the Celery monitoring transport (docs/monitoring.md).
#
# Not here, on purpose: the queues the processes make and remove themselves at run
# time, the web processes' completion-signal queues (<name_prefix>-reply-*) and the
# monitoring queues (ffmon-*). README.md, "Tear it down", says how to remove any left.

resource "aws_sqs_queue" "dead_letter" {
  name                      = local.dlq_name
  message_retention_seconds = local.dlq_retention_seconds
  tags                      = merge(local.tags, { "facefleet:role" = "requests" })
}

resource "aws_sqs_queue" "requests" {
  name = local.queue_name
  # Above the task hard time limit: a running task's message never reappears.
  visibility_timeout_seconds = var.visibility_timeout
  # Consumers that forget WaitTimeSeconds still long-poll.
  receive_wait_time_seconds = var.sqs_wait_time
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receives
  })
  tags = merge(local.tags, { "facefleet:role" = "requests" })
}

resource "aws_sns_topic" "monitoring" {
  for_each = local.topics

  name = each.value
  # Exactly kombu's tags (see local.topic_tags), never local.tags.
  tags = local.topic_tags
}
