variable "project_id" {
  description = "The project the service account lives in."
  type        = string
  nullable    = false
}

variable "account_id" {
  description = "The service account's ID (the part of the e-mail address before @)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.account_id))
    error_message = "account_id must be 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "display_name" {
  description = "A human-readable name for the service account."
  type        = string
  nullable    = false
}

variable "description" {
  description = "What runs as this service account and why it holds its roles."
  type        = string
  default     = ""
}

variable "project_roles" {
  description = "Project-level roles granted to the service account. Basic roles (owner, editor, viewer) are refused: least privilege."
  type        = set(string)
  default     = []
  nullable    = false

  validation {
    condition = alltrue([
      for r in var.project_roles : can(regex("^roles/[a-zA-Z0-9_.]+$", r)) && !contains(["roles/owner", "roles/editor", "roles/viewer"], r)
    ])
    error_message = "project_roles must be predefined roles (roles/...), never roles/owner, roles/editor or roles/viewer."
  }
}

variable "workload_identity_users" {
  description = "Kubernetes service accounts (NAMESPACE/NAME) that may act as this service account through GKE Workload Identity."
  type        = set(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for u in var.workload_identity_users : can(regex("^[a-z0-9-]+/[a-z0-9-]+$", u))])
    error_message = "workload_identity_users must be NAMESPACE/NAME of Kubernetes service accounts."
  }
}

variable "project_role_conditions" {
  description = "IAM conditions on some of project_roles: role -> title, description and CEL expression. The role is granted only where the expression holds, e.g. roles/datastore.user on one Firestore database: resource.name == \"projects/PROJECT/databases/(default)\"."
  type = map(object({
    title       = string
    description = optional(string, "")
    expression  = string
  }))
  default  = {}
  nullable = false

  validation {
    condition = alltrue([
      for role, c in var.project_role_conditions : can(regex("^roles/[a-zA-Z0-9_.]+$", role)) && length(trimspace(c.title)) > 0 && length(c.title) <= 100 && length(trimspace(c.expression)) > 0
    ])
    error_message = "project_role_conditions must map predefined roles (roles/...) to a title (1-100 characters) and a non-empty expression."
  }
}
