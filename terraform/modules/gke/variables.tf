variable "project_id" {
  description = "The project the cluster lives in."
  type        = string
  nullable    = false
}

variable "name" {
  description = "The cluster's name; its node service account is NAME-nodes."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "The region of the regional cluster. Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.region))
    error_message = "region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "zones" {
  description = "Exactly three zones of the region: one NATS server per zone (JetStream R3 keeps quorum when a zone is lost)."
  type        = list(string)
  nullable    = false

  validation {
    condition = length(var.zones) == 3 && length(distinct(var.zones)) == 3 && alltrue([
      for z in var.zones : can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))-[a-z]$", z))
    ])
    error_message = "zones must be three distinct zones in the EEA, e.g. [\"europe-north1-a\", \"europe-north1-b\", \"europe-north1-c\"]."
  }
}

variable "network_id" {
  description = "The VPC (network module's network_id)."
  type        = string
  nullable    = false
}

variable "subnetwork_id" {
  description = "The nodes' subnet (network module's gke_subnetwork_id)."
  type        = string
  nullable    = false
}

variable "pods_range_name" {
  description = "The subnet's secondary range for pods."
  type        = string
  nullable    = false
}

variable "services_range_name" {
  description = "The subnet's secondary range for Services."
  type        = string
  nullable    = false
}

variable "master_ipv4_cidr" {
  description = "The /28 the private control plane's endpoint lives in (must not overlap any subnet)."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr, 0)) && try(split("/", var.master_ipv4_cidr)[1] == "28", false)
    error_message = "master_ipv4_cidr must be an IPv4 /28 range."
  }
}

variable "master_authorized_networks" {
  description = "Who may reach the control plane (CI runners, the operators' bastion). Never the whole internet."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  nullable = false

  validation {
    condition = length(var.master_authorized_networks) > 0 && alltrue([
      for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && try(tonumber(split("/", n.cidr_block)[1]) >= 8, false)
    ])
    error_message = "master_authorized_networks must list at least one CIDR range, none wider than /8 (never 0.0.0.0/0)."
  }
}

variable "release_channel" {
  description = "GKE release channel: upgrades come from it, inside the maintenance window."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "maintenance_window" {
  description = "Recurring maintenance window in UTC (RFC 3339 start and end, RFC 5545 recurrence). Nights at weekends by default."
  type = object({
    start_time = string
    end_time   = string
    recurrence = string
  })
  default = {
    start_time = "2025-01-04T01:00:00Z"
    end_time   = "2025-01-04T05:00:00Z"
    recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
  }

  validation {
    condition     = try(timecmp(var.maintenance_window.start_time, var.maintenance_window.end_time) < 0, false) && startswith(var.maintenance_window.recurrence, "FREQ=")
    error_message = "maintenance_window needs RFC 3339 times with start before end, and an RFC 5545 recurrence (FREQ=...)."
  }
}

variable "nats_machine_type" {
  description = "Machine type of the NATS nodes (the chart recommends at least 2 CPU and 8 GiB per server in production)."
  type        = string
  default     = "n2-standard-4"
  nullable    = false
}

variable "nats_disk_size_gb" {
  description = "Boot disk of a NATS node, GB (JetStream data lives on its own persistent volume)."
  type        = number
  default     = 50

  validation {
    condition     = var.nats_disk_size_gb >= 20
    error_message = "nats_disk_size_gb must be at least 20."
  }
}

variable "nats_node_tag" {
  description = "Network tag on the NATS nodes (network module's nats_node_tag): the NATS firewall rules target it."
  type        = string
  nullable    = false
}

variable "system_machine_type" {
  description = "Machine type of the general node pool (kube-system, cert-manager, the NATS admin job)."
  type        = string
  default     = "e2-standard-2"
  nullable    = false
}

variable "system_nodes_per_zone" {
  description = "Minimum and maximum nodes per zone of the general pool (autoscaled)."
  type = object({
    min = number
    max = number
  })
  default = { min = 1, max = 3 }

  validation {
    condition     = var.system_nodes_per_zone.min >= 1 && var.system_nodes_per_zone.max >= var.system_nodes_per_zone.min
    error_message = "system_nodes_per_zone needs 1 <= min <= max."
  }
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster. Keep true in production."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels on the cluster's resources."
  type        = map(string)
  default     = {}
}
