variable "project_id" {
  description = "The project the database lives in."
  type        = string
  nullable    = false
}

variable "database_id" {
  description = "The database ID. \"(default)\" is the one firebase.json deploys rules and indexes to and the SDKs use."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.database_id == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.database_id))
    error_message = "database_id must be \"(default)\" or 4-63 lowercase letters, digits and hyphens."
  }
}

variable "location_id" {
  description = "Where the ledger of record lives: the eur3 multi-region (Belgium and the Netherlands) or one EEA region. It cannot be changed later."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^(eur3|europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12)))$", var.location_id))
    error_message = "location_id must be eur3 or a Google Cloud region in the EEA (never nam5, us-*, europe-west2 London or europe-west6 Zurich)."
  }
}

variable "daily_backup_retention" {
  description = "How long a daily backup is kept (seconds, e.g. \"604800s\"; at most 7 days for daily backups)."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.daily_backup_retention)) && try(tonumber(trimsuffix(var.daily_backup_retention, "s")) >= 86400 && tonumber(trimsuffix(var.daily_backup_retention, "s")) <= 604800, false)
    error_message = "daily_backup_retention must be from 86400s (1 day) to 604800s (7 days)."
  }
}

variable "weekly_backup_retention" {
  description = "How long a weekly backup is kept (seconds; at most 14 weeks)."
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

variable "app_check_enforcement" {
  description = "App Check on Firestore: ENFORCED (requests without a valid App Check token are refused) or UNENFORCED (metrics only, while a new app version rolls out)."
  type        = string
  default     = "ENFORCED"

  validation {
    condition     = contains(["ENFORCED", "UNENFORCED"], var.app_check_enforcement)
    error_message = "app_check_enforcement must be ENFORCED or UNENFORCED."
  }
}
