variable "project_id" {
  description = "The project of the topics and jobs."
  type        = string
  nullable    = false
}

variable "push_topic" {
  description = "The topic the notifier queues pushes on and on_push is triggered by (fjordbank.adapters.pubsub.PUSH_TOPIC)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9._~+%-]{2,254}$", var.push_topic)) && !startswith(var.push_topic, "goog")
    error_message = "push_topic must be a valid Pub/Sub topic name."
  }
}

variable "jobs_topic" {
  description = "The topic Cloud Scheduler publishes {\"job\": NAME} on and on_scheduled_job is triggered by (fjordbank.adapters.pubsub.JOBS_TOPIC)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9._~+%-]{2,254}$", var.jobs_topic)) && !startswith(var.jobs_topic, "goog")
    error_message = "jobs_topic must be a valid Pub/Sub topic name."
  }
}

variable "jobs" {
  description = "The scheduled jobs (fjordbank.service_layer.scheduled.JOBS): name -> cron schedule (Europe/Oslo) and description. Each publishes {\"job\": NAME}."
  type = map(object({
    schedule    = string
    description = string
  }))
  nullable = false

  validation {
    condition = length(var.jobs) > 0 && alltrue([
      for name, j in var.jobs : can(regex("^[a-z][a-z0-9-]{0,499}$", name)) && length(split(" ", j.schedule)) == 5
    ])
    error_message = "jobs must be named in lowercase with hyphens, and each schedule must be a five-field cron expression."
  }
}

variable "scheduler_region" {
  description = "Where the Cloud Scheduler jobs live. Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.scheduler_region))
    error_message = "scheduler_region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "time_zone" {
  description = "The jobs' time zone: due dates are Norwegian dates."
  type        = string
  default     = "Europe/Oslo"

  validation {
    condition     = var.time_zone == "Europe/Oslo"
    error_message = "time_zone must be Europe/Oslo: the code computes due dates in Norway's time (fjordbank.domain.norway)."
  }
}

variable "persistence_regions" {
  description = "The only regions Pub/Sub may store messages in (the message storage policy). All in the EEA."
  type        = list(string)
  nullable    = false

  validation {
    condition = length(var.persistence_regions) > 0 && alltrue([
      for r in var.persistence_regions : can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", r))
    ])
    error_message = "persistence_regions must be Google Cloud regions in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "message_retention" {
  description = "How long a topic keeps messages for replay (seconds, e.g. \"86400s\"; 10 minutes to 31 days)."
  type        = string
  default     = "86400s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.message_retention)) && try(tonumber(trimsuffix(var.message_retention, "s")) >= 600 && tonumber(trimsuffix(var.message_retention, "s")) <= 2678400, false)
    error_message = "message_retention must be from 600s to 2678400s."
  }
}

variable "push_publishers" {
  description = "Who may publish on the push topic: name -> service account e-mail (the notifier only)."
  type        = map(string)
  default     = {}
}

variable "jobs_publishers" {
  description = "Who may publish on the jobs topic besides Cloud Scheduler: name -> service account e-mail (the functions' own, whose due-payments run hands what it could not do to a next run at once)."
  type        = map(string)
  default     = {}
}

variable "labels" {
  description = "Labels on the topics."
  type        = map(string)
  default     = {}
}
