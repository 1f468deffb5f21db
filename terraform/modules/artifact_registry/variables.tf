variable "project_id" {
  description = "The project of the repository."
  type        = string
  nullable    = false
}

variable "location" {
  description = "The repository's region (the consumers' region, so pulls stay regional). Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.location))
    error_message = "location must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "repository_id" {
  description = "The repository's ID."
  type        = string
  default     = "fjordbank"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.repository_id))
    error_message = "repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "keep_recent" {
  description = "How many of the most recent versions of each image are always kept (rollback targets)."
  type        = number
  default     = 30

  validation {
    condition     = var.keep_recent >= 5
    error_message = "keep_recent must be at least 5."
  }
}

variable "writers" {
  description = "Who may push images (CI's service accounts): name -> service account e-mail."
  type        = map(string)
  default     = {}
}

variable "labels" {
  description = "Labels on the repository."
  type        = map(string)
  default     = {}
}
