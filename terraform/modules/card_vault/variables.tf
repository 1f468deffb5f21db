variable "project_id" {
  description = "The project of the vault's database: the bank's, beside its (default) database."
  type        = string
  nullable    = false
}

variable "database_id" {
  description = "The vault's Firestore database ID: FJB_VAULT_DATABASE of the card service (fjordbank/config.py, default card-vault). Never (default), which every service's identity reads."
  type        = string
  default     = "card-vault"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.database_id))
    error_message = "database_id must be a named database's ID (4-63 lowercase letters, digits and hyphens, starting with a letter), never \"(default)\"."
  }
}

variable "location_id" {
  description = "Where the vault lives: the location of the bank's (default) database (firestore module's location_id), eur3 or one EEA region (card numbers). It cannot be changed later."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^(eur3|europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12)))$", var.location_id))
    error_message = "location_id must be eur3 or a Google Cloud region in the EEA (never nam5, us-*, europe-west2 London or europe-west6 Zurich)."
  }
}

variable "users" {
  description = "Who may read and write the vault: the card services' service accounts (topology module's card_services), name -> e-mail. Nobody else is granted it."
  type        = map(string)
  nullable    = false

  validation {
    condition = length(var.users) > 0 && alltrue([
      for email in values(var.users) : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", email))
    ])
    error_message = "users must name at least one user-managed service account (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "daily_backup_retention" {
  description = "How long a daily backup of the vault is kept (seconds, e.g. \"604800s\"; at most 7 days for daily backups)."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.daily_backup_retention)) && try(tonumber(trimsuffix(var.daily_backup_retention, "s")) >= 86400 && tonumber(trimsuffix(var.daily_backup_retention, "s")) <= 604800, false)
    error_message = "daily_backup_retention must be from 86400s (1 day) to 604800s (7 days)."
  }
}

variable "weekly_backup_retention" {
  description = "How long a weekly backup of the vault is kept (seconds; at most 14 weeks)."
  type        = string
  default     = "8467200s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.weekly_backup_retention)) && try(tonumber(trimsuffix(var.weekly_backup_retention, "s")) >= 604800 && tonumber(trimsuffix(var.weekly_backup_retention, "s")) <= 8467200, false)
    error_message = "weekly_backup_retention must be from 604800s (1 week) to 8467200s (14 weeks)."
  }
}

variable "weekly_backup_day" {
  description = "The day of the weekly backup."
  type        = string
  default     = "SUNDAY"

  validation {
    condition     = contains(["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"], var.weekly_backup_day)
    error_message = "weekly_backup_day must be a day of the week in capitals, e.g. SUNDAY."
  }
}
