variable "project_id" {
  description = "The project of the bucket."
  type        = string
  nullable    = false
}

variable "name" {
  description = "The bucket's name (globally unique), e.g. PROJECT-clearing."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.name)) && !startswith(var.name, "goog")
    error_message = "name must be 3-63 lowercase letters, digits, hyphens and underscores, starting and ending with a letter or digit, not starting with goog."
  }
}

variable "location" {
  description = "The bucket's region: the clearing service's, so the mount stays regional. Must be in the EEA (payment files hold personal data)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.location))
    error_message = "location must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "exchangers" {
  description = "Who reads and writes the files: name -> service account e-mail (the clearing services and the transfer service)."
  type        = map(string)
  nullable    = false

  validation {
    condition     = alltrue([for e in values(var.exchangers) : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", e))])
    error_message = "exchangers must be user-managed service accounts (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "list_readers" {
  description = "Who reads the sanctions list under sanctions/ (and nothing else of it; they may list the objects' names): name -> service account e-mail (the clearing and screening services). The exchangers may not touch sanctions/."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for e in values(var.list_readers) : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", e))])
    error_message = "list_readers must be user-managed service accounts (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "noncurrent_days" {
  description = "Days an overwritten or deleted file's old version is kept before it is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_days >= 7 && floor(var.noncurrent_days) == var.noncurrent_days
    error_message = "noncurrent_days must be a whole number of at least 7."
  }
}

variable "labels" {
  description = "Labels on the bucket."
  type        = map(string)
  default     = {}
}
