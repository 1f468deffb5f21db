variable "project_id" {
  description = "The project the service runs in."
  type        = string
  nullable    = false
}

variable "name" {
  description = "The consumer service (one of fjordbank.topology.SERVICES): its Cloud Run service, its NATS user and SERVICE in the image."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name must be 2-25 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "The Cloud Run region: the region of the Direct VPC egress subnet and of NATS. Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.region))
    error_message = "region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "image" {
  description = "The image, by digest only (REPOSITORY/IMAGE@sha256:<64 hex>): what was tested is what runs, and a moved tag changes nothing."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest (REPOSITORY/IMAGE@sha256:<64 hex>), never by tag alone."
  }
}

variable "prometheus_sidecar_image" {
  description = "The Managed Service for Prometheus sidecar for Cloud Run, pinned by version (or digest), never latest: it scrapes the service's /metrics for the alert rules."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
  nullable    = false

  validation {
    condition     = can(regex("^us-docker\\.pkg\\.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar(:[0-9]+\\.[0-9]+\\.[0-9]+|@sha256:[0-9a-f]{64})$", var.prometheus_sidecar_image))
    error_message = "prometheus_sidecar_image must be Google's cloud-run-gmp-sidecar image pinned by a version (:X.Y.Z) or a digest, never latest."
  }
}

variable "min_instances" {
  description = "Instances kept running. A pull consumer gets no requests Cloud Run could scale on, so it never scales to zero: at least 1."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.min_instances >= 1 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number >= 1: a pull consumer at zero instances never consumes."
  }
}

variable "max_instances" {
  description = "Upper bound of instances (each one pulls in batches from the same durable consumer)."
  type        = number
  default     = 3
  nullable    = false

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 100."
  }
}

variable "max_concurrency" {
  description = "max_instance_request_concurrency: HTTP requests sent to an instance at once. Probes and /metrics for every consumer; a card service (serves_card_api) also serves the card processor's API on that port, and takes the API server's connection limit (the topology module's card_api_max_connections, fjordbank/runtime/http.py MAX_CONNECTIONS). Null: the default."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 1000
    error_message = "max_concurrency must be from 1 to 1000."
  }
}

variable "cpu" {
  description = "CPU limit per instance. CPU is always allocated (cpu_idle = false): the pull loop and NATS heartbeats run between requests."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "8"], var.cpu)
    error_message = "cpu must be \"1\", \"2\", \"4\" or \"8\"."
  }
}

variable "memory" {
  description = "Memory limit per instance (e.g. 512Mi, 1Gi)."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must be a quantity in Mi or Gi, e.g. 512Mi."
  }
}

variable "network_id" {
  description = "The VPC of the Direct VPC egress."
  type        = string
  nullable    = false
}

variable "subnetwork_id" {
  description = "The Direct VPC egress subnet (network module's run_egress_subnetwork_id)."
  type        = string
  nullable    = false
}

variable "network_tags" {
  description = "Network tags on the instances' egress (for firewall rules)."
  type        = list(string)
  default     = ["fjb-consumer"]
}

variable "nats_urls" {
  description = "The NATS cluster's URLs (nats_lb module's nats_urls): FJB_NATS_URLS."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.nats_urls) > 0 && alltrue([for u in var.nats_urls : startswith(u, "tls://")])
    error_message = "nats_urls must be tls:// URLs: NATS is reached over TLS only."
  }
}

variable "nats_secrets" {
  description = "This identity's secret IDs: password, tls_cert and tls_key (secrets module's secret_ids[NAME]), and the CA certificate's (ca)."
  type = object({
    password = string
    tls_cert = string
    tls_key  = string
    ca       = string
  })
  nullable = false
}

variable "secret_env" {
  description = "The service's other secrets, environment variable -> secret ID (already readable by its service account)."
  type        = map(string)
  default     = {}
}

variable "env" {
  description = "Plain environment variables (fjordbank/config.py). Never a secret: those go through secret_env."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.env) : !can(regex("(PASSWORD|SECRET|_KEY$|TOKEN)", k))])
    error_message = "env must not carry secrets (PASSWORD, SECRET, *_KEY, TOKEN): use secret_env."
  }

  validation {
    condition     = length(setintersection(keys(var.env), ["SERVICE", "FJB_NATS_USER", "FJB_NATS_URLS", "FJB_PROJECT_ID", "FJB_HTTP_PORT", "FJB_CARD_API_PORT", "FJB_NATS_CA", "FJB_NATS_CERT", "FJB_NATS_KEY", "PORT"])) == 0
    error_message = "env must not set what the module sets itself (SERVICE, FJB_NATS_*, FJB_PROJECT_ID, FJB_HTTP_PORT, FJB_CARD_API_PORT: serves_card_api) or Cloud Run reserves (PORT)."
  }
}

variable "storage_volumes" {
  description = "Cloud Storage buckets mounted into the container with Cloud Storage FUSE: volume name -> bucket, absolute mount path and read_only. The clearing service's file exchange with the clearing house is one (its FJB_CLEARING_DIR, set through env)."
  type = map(object({
    bucket     = string
    mount_path = string
    read_only  = optional(bool, false)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for name in keys(var.storage_volumes) : can(regex("^[a-z][a-z0-9-]{0,62}$", name)) && !startswith(name, "nats-")])
    error_message = "storage_volumes names must be lowercase letters, digits and hyphens, starting with a letter, and not nats-* (the module's own volumes)."
  }

  validation {
    condition = alltrue([
      for v in values(var.storage_volumes) : can(regex("^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$", v.mount_path)) && !startswith(v.mount_path, "/var/run/secrets") && !contains(["/app", "/venv", "/tmp", "/dev", "/proc", "/sys", "/etc", "/usr"], v.mount_path)
    ])
    error_message = "storage_volumes mount paths must be absolute folders of their own (e.g. /mnt/clearing): not /, the image's /app, /venv, /tmp, a system folder or /var/run/secrets."
  }
}

variable "serves_card_api" {
  description = "Serve the card processor's API on the service's one HTTP port: FJB_CARD_API_PORT = FJB_HTTP_PORT (the card service only)."
  type        = bool
  default     = false
  nullable    = false
}

variable "service_account_email" {
  description = "The service's own service account (fjb-NAME, one per consumer service), which alone may read its NATS secrets."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.service_account_email))
    error_message = "service_account_email must be a user-managed service account (NAME@PROJECT.iam.gserviceaccount.com), never the default compute account."
  }
}

variable "startup_probe" {
  description = "The startup probe on /readyz (ready once NATS is reachable). Direct VPC egress can delay connections by a minute or more at start: period x failures must allow for it."
  type = object({
    period_seconds    = number
    timeout_seconds   = number
    failure_threshold = number
  })
  default = { period_seconds = 5, timeout_seconds = 3, failure_threshold = 36 }

  validation {
    condition     = var.startup_probe.period_seconds * var.startup_probe.failure_threshold >= 90 && var.startup_probe.timeout_seconds <= var.startup_probe.period_seconds && var.startup_probe.period_seconds * var.startup_probe.failure_threshold <= 240
    error_message = "startup_probe must allow 90-240 s (period x failures) and have timeout <= period."
  }
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the service."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels on the service."
  type        = map(string)
  default     = {}
}
