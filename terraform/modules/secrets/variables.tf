variable "project_id" {
  description = "The project the secrets live in."
  type        = string
  nullable    = false
}

variable "identities" {
  description = "Per NATS identity (fjordbank/topology.py): the service account that runs it, and its secrets as kind -> secret ID (password, tls_cert, tls_key, and a service's own). Each secret is readable by that service account only."
  type = map(object({
    service_account = string
    secrets         = map(string)
  }))
  nullable = false

  validation {
    condition = alltrue([
      for id, v in var.identities : can(regex("^[a-z][a-z0-9-]*$", id)) && alltrue([for k in ["password", "tls_cert", "tls_key"] : contains(keys(v.secrets), k)])
    ])
    error_message = "identities must be keyed by NATS identity names, and each must have a password, tls_cert and tls_key secret."
  }

  validation {
    condition = alltrue(flatten([
      for v in var.identities : [for s in values(v.secrets) : can(regex("^[A-Za-z0-9_-]{1,255}$", s))]
    ]))
    error_message = "Secret IDs may contain only letters, digits, hyphens and underscores."
  }
}

variable "ca_secret_id" {
  description = "The secret holding the NATS cluster's CA certificate, readable by every identity's service account."
  type        = string
  default     = "nats-ca-cert"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.ca_secret_id))
    error_message = "ca_secret_id may contain only letters, digits, hyphens and underscores."
  }
}

variable "system_password_secret_id" {
  description = "The secret holding the password of the NATS system account's user (system): hashed into the servers' configuration, read by no service."
  type        = string
  default     = "nats-system-password"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.system_password_secret_id))
    error_message = "system_password_secret_id may contain only letters, digits, hyphens and underscores."
  }
}

variable "replica_locations" {
  description = "Where Secret Manager keeps the secrets' replicas (user-managed replication). All in the EEA."
  type        = list(string)
  nullable    = false

  validation {
    condition = length(var.replica_locations) > 0 && alltrue([
      for l in var.replica_locations : can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", l))
    ])
    error_message = "replica_locations must be Google Cloud regions in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "labels" {
  description = "Labels on every secret."
  type        = map(string)
  default     = {}
}
