# Inputs of the facefleet root module. Defaults match the code's own defaults
# (docs/configuration.md), so an unset variable and an unset FACEFLEET_* variable
# mean the same thing. README.md has them as a table.

# ---------------------------------------------------------------- where

variable "region" {
  description = "AWS region of every resource (AWS_DEFAULT_REGION of the processes)."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint" {
  description = "Endpoint URL of an AWS stand-in (moto's server) for every service this module calls; \"\" (the default) means real AWS. Also becomes FACEFLEET_AWS_ENDPOINT of the instances."
  type        = string
  default     = ""

  validation {
    condition     = var.aws_endpoint == "" || can(regex("^https?://[^/]+$", trimsuffix(var.aws_endpoint, "/")))
    error_message = "aws_endpoint must be \"\" (real AWS) or an http(s)://host[:port] URL."
  }
}

# ---------------------------------------------------------------- names

variable "name_prefix" {
  description = "Prefix of every name this module makes: buckets <prefix>-input/-output/-models, queues <prefix>-requests(-dlq), roles <prefix>-web/-worker/-controller. Bucket names are global across all AWS accounts: on real AWS pick one nobody has (e.g. facefleet-<account id>) or set the *_bucket variables."
  type        = string
  default     = "facefleet"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3-40 characters, lower-case letters, digits and hyphens, not starting or ending with a hyphen (it is part of bucket names)."
  }
}

variable "input_bucket" {
  description = "Name of the bucket of uploaded images (null: <name_prefix>-input)."
  type        = string
  default     = null
}

variable "output_bucket" {
  description = "Name of the bucket of labels, results and the fleet state (null: <name_prefix>-output)."
  type        = string
  default     = null
}

variable "model_bucket" {
  description = "Name of the versioned bucket of weights, gallery and releases (null: <name_prefix>-models)."
  type        = string
  default     = null
}

variable "queue_name" {
  description = "Name of the request queue (null: <name_prefix>-requests)."
  type        = string
  default     = null
}

variable "dead_letter_queue_name" {
  description = "Name of its dead-letter queue (null: <name_prefix>-requests-dlq)."
  type        = string
  default     = null
}

variable "reply_queue_prefix" {
  description = "Name prefix of the web processes' completion-signal queues, FACEFLEET_REPLY_QUEUE_PREFIX (null: <name_prefix>-reply-). The web and worker policies are scoped to it."
  type        = string
  default     = null
}

variable "monitor_queue_prefix" {
  description = "Name prefix of the Celery monitoring queues, FACEFLEET_MONITOR_QUEUE_PREFIX. Every policy's monitoring statement is scoped to it."
  type        = string
  default     = "ffmon-"
}

variable "fleet_state_key" {
  description = "Key of the autoscaler's published state in the output bucket, FACEFLEET_FLEET_STATE_KEY (the controller may write only this key)."
  type        = string
  default     = "fleet/state.json"
}

variable "gallery_key" {
  description = "Key of the gallery object in the model bucket (FACEFLEET_GALLERY is s3://<model bucket>/<gallery_key>). Terraform does not create it: the first enrolment does."
  type        = string
  default     = "gallery.json"
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets with everything in them (uploads, results, every gallery version). Off by default; tests turn it on."
  type        = bool
  default     = false
}

variable "expire_after_days" {
  description = "When above 0, S3 lifecycle rules delete uploads (input bucket) and Celery results (output bucket, results/) this many days after they were written. 0 keeps them forever, as the code itself does."
  type        = number
  default     = 0

  validation {
    condition     = var.expire_after_days >= 0 && floor(var.expire_after_days) == var.expire_after_days
    error_message = "expire_after_days must be a whole number of days, 0 to keep everything."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags, except the two SNS topics (their tags must be exactly the ones Celery's transport creates them with, or SNS refuses its CreateTopic)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- the request queue

variable "visibility_timeout" {
  description = "SQS visibility timeout of the request queue in seconds, FACEFLEET_VISIBILITY_TIMEOUT: how soon a lost worker's messages are delivered again. Workers extend the messages they hold every FACEFLEET_VISIBILITY_EXTEND_EVERY (10 s), at most half of it."
  type        = number
  default     = 30

  validation {
    condition     = var.visibility_timeout >= 1 && var.visibility_timeout <= 43200 && floor(var.visibility_timeout) == var.visibility_timeout
    error_message = "visibility_timeout must be a whole number of seconds from 1 to 43200 (SQS's range)."
  }
}

variable "sqs_wait_time" {
  description = "Long-poll wait of the request queue (ReceiveMessageWaitTimeSeconds) and of every consumer, FACEFLEET_SQS_WAIT_TIME."
  type        = number
  default     = 10

  validation {
    condition     = var.sqs_wait_time >= 0 && var.sqs_wait_time <= 20 && floor(var.sqs_wait_time) == var.sqs_wait_time
    error_message = "sqs_wait_time must be a whole number of seconds from 0 to 20 (SQS's range)."
  }
}

variable "max_receives" {
  description = "Deliveries of a message before SQS moves it to the dead-letter queue (the redrive policy's maxReceiveCount), FACEFLEET_MAX_RECEIVES."
  type        = number
  default     = 3

  validation {
    condition     = var.max_receives >= 1 && var.max_receives <= 1000 && floor(var.max_receives) == var.max_receives
    error_message = "max_receives must be a whole number from 1 to 1000 (SQS's range)."
  }
}

# ---------------------------------------------------------------- what is deployed

variable "source_archive" {
  description = "Path of the source archive of the version to deploy, made with `git archive --format=tar.gz -o facefleet.tar.gz HEAD` at the repository root. Uploaded to the model bucket as releases/<sha256>.tar.gz; every instance installs from it."
  type        = string

  validation {
    condition     = can(regex("\\.(tar\\.gz|tgz)$", var.source_archive)) && fileexists(var.source_archive)
    error_message = "source_archive must be an existing .tar.gz file: run `git archive --format=tar.gz -o facefleet.tar.gz HEAD` at the repository root and pass its path."
  }
}

variable "weights_file" {
  description = "Path of the embedder weights to deploy (a torch state dict). For the default model: `python -m recognition weights` prints it (~/.cache/facefleet/weights/facenet-msceleb-128.pt). Uploaded with its sha256 as object metadata; workers verify it."
  type        = string

  validation {
    condition     = fileexists(var.weights_file)
    error_message = "weights_file must be an existing file: run `make weights` (or `python -m recognition weights`) and pass the path it prints."
  }
}

variable "weights_name" {
  description = "Name part of the weights' key, weights/<name>-<first 16 hex digits of the sha256>.pt (the key `python -m deploy.provision` would use)."
  type        = string
  default     = "facenet-msceleb-128"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+$", var.weights_name))
    error_message = "weights_name may hold letters, digits, '.', '_' and '-' only."
  }
}

variable "weights_model" {
  description = "Registry model the weights are (object metadata facefleet-model): facenet-msceleb-128, vggface2 or casia-webface; \"\" when unknown (the code then goes by the embedding size)."
  type        = string
  default     = "facenet-msceleb-128"

  validation {
    condition     = contains(["", "facenet-msceleb-128", "vggface2", "casia-webface"], var.weights_model)
    error_message = "weights_model must be one of facenet-msceleb-128, vggface2, casia-webface, or \"\"."
  }
}

variable "weights_embedding_dim" {
  description = "Embedding size of the weights (object metadata embedding-dim): 128 for facenet-msceleb-128, 512 for vggface2 and casia-webface."
  type        = number
  default     = 128

  validation {
    condition     = contains([128, 512], var.weights_embedding_dim)
    error_message = "weights_embedding_dim must be 128 or 512 (the only sizes with known preprocessing and thresholds)."
  }
}

variable "weights_module_overrides" {
  description = "Module settings that travel with the weights (object metadata module-overrides, as the weights' sidecar .json lists them). Empty for every known model."
  type        = map(number)
  default     = {}
}

# ---------------------------------------------------------------- instances

variable "worker_ami" {
  description = "AMI of the workers; \"\" looks up the newest Amazon Linux 2023 (x86_64 or ami_architecture). GPU instance types need an AMI with the NVIDIA driver (README.md, GPU workers); a baked AMI boots much faster (README.md, Baking an AMI)."
  type        = string
  default     = ""
}

variable "control_ami" {
  description = "AMI of the control instance; \"\" looks up the newest Amazon Linux 2023. Changes after creation are ignored: replace the instance to move it."
  type        = string
  default     = ""
}

variable "ami_architecture" {
  description = "Architecture of the looked-up Amazon Linux 2023 AMIs: x86_64, or arm64 for Graviton instance types."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.ami_architecture)
    error_message = "ami_architecture must be x86_64 or arm64."
  }
}

variable "worker_instance_type" {
  description = "Instance type of the workers. Any type works, GPU ones (g4dn, g5, g6...) included with a driver AMI; FACEFLEET_DEVICE=auto then puts the models on the GPU."
  type        = string
  default     = "c7i.large"
}

variable "control_instance_type" {
  description = "Instance type of the control instance (web tier and controller)."
  type        = string
  default     = "t3.small"
}

variable "worker_volume_size" {
  description = "Root volume of a worker in GiB (gp3, encrypted). torch with its CUDA libraries takes ~6 GiB; driver AMIs need more than their own snapshot size."
  type        = number
  default     = 30
}

variable "control_volume_size" {
  description = "Root volume of the control instance in GiB (gp3, encrypted)."
  type        = number
  default     = 30
}

variable "max_instances" {
  description = "Most worker instances pending or running at once, FACEFLEET_MAX_INSTANCES (also the slot count)."
  type        = number
  default     = 15

  validation {
    condition     = var.max_instances >= 1 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number of at least 1."
  }
}

variable "worker_role_tag" {
  description = "Value of the facefleet:role tag of the worker instances, FACEFLEET_ROLE. The controller may start, stop and terminate only instances carrying it."
  type        = string
  default     = "app-tier"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.:/=+@-]{1,64}$", var.worker_role_tag))
    error_message = "worker_role_tag: 1-64 characters, letters, digits and _.:/=+@- (an EC2 tag value the code also hashes into launch tokens)."
  }
}

variable "device" {
  description = "Where the workers run the models, FACEFLEET_DEVICE: auto (the GPU when torch sees one), cpu or cuda."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "cpu", "cuda"], var.device)
    error_message = "device must be auto, cpu or cuda."
  }
}

variable "torch_index_url" {
  description = "When set, torch and torchvision (the versions requirements.txt pins) are installed from this pip index first, e.g. https://download.pytorch.org/whl/cpu for CPU-only fleets (~2 GB less to download than PyPI's CUDA build). \"\": PyPI, which works on CPU and GPU alike."
  type        = string
  default     = ""
}

variable "python" {
  description = "Python interpreter the install creates the virtual environment with (>= 3.11). Amazon Linux 2023 installs python3.11; on Ubuntu 24.04 use python3 (3.12)."
  type        = string
  default     = "python3.11"
}

variable "separate_control_instances" {
  description = "false (default): one control instance runs the web tier and the controller, with a role carrying both their policies. true: two instances, each with its own process role only (strict least privilege, one more instance to pay for). See README.md, The control instance's roles."
  type        = bool
  default     = false
}

variable "extra_environment" {
  description = "More FACEFLEET_* settings for every instance (docs/configuration.md), e.g. { FACEFLEET_MIN_INSTANCES = \"1\" }. Keys this module already sets are refused (change the matching variable instead). Values end up in user data: keep secrets out."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.extra_environment : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && !can(regex("['\\n\\r]", v))])
    error_message = "extra_environment: keys must be upper-case environment variable names, values must not hold a single quote or a line break."
  }
}

# ---------------------------------------------------------------- network and access

variable "subnet_id" {
  description = "Subnet of the workers (and of the control instance unless control_subnet_id is set); \"\" uses the default VPC's default subnets. The subnet needs a route to the internet (public IP or NAT) for the install, or VPC endpoints and a baked AMI."
  type        = string
  default     = ""
}

variable "control_subnet_id" {
  description = "Subnet of the control instance(s), in the same VPC as subnet_id; \"\" means subnet_id."
  type        = string
  default     = ""
}

variable "worker_public_ip" {
  description = "Whether workers in subnet_id get a public IP (null: the subnet's own setting). Ignored without subnet_id (default subnets give one)."
  type        = bool
  default     = null
}

variable "control_public_ip" {
  description = "Whether the control instance gets a public IP (the web URL is on it)."
  type        = bool
  default     = true
}

variable "web_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the web tier on port 80. Empty (the default): closed; e.g. [\"203.0.113.7/32\"] for your own address."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.web_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "web_ingress_cidrs must be CIDR blocks such as 203.0.113.7/32."
  }
}

variable "ssh_ingress_cidrs" {
  description = "CIDR blocks allowed SSH (port 22) to the control instance. Empty (the default): closed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "ssh_ingress_cidrs must be CIDR blocks such as 203.0.113.7/32."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH to the instances; \"\" for none."
  type        = string
  default     = ""
}
