variable "project_id" {
  description = "The project the address lives in."
  type        = string
  nullable    = false
}

variable "name" {
  description = "The reserved address's name; the NATS Service refers to it by this name."
  type        = string
  default     = "nats-client-lb"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a valid Compute Engine resource name."
  }
}

variable "region" {
  description = "The region of the cluster and its internal load balancer. Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.region))
    error_message = "region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "subnetwork_id" {
  description = "The subnet the address is taken from (the GKE nodes' subnet)."
  type        = string
  nullable    = false
}

variable "address" {
  description = "A fixed IPv4 address inside the subnet, or null to let Google choose one."
  type        = string
  default     = null

  validation {
    condition     = var.address == null || can(regex("^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$", var.address))
    error_message = "address must be an IPv4 address or null."
  }
}

variable "allowed_source_ranges" {
  description = "The only client ranges the Service admits (its loadBalancerSourceRanges): the consumers' egress and the functions' connector ranges."
  type        = list(string)
  nullable    = false

  validation {
    condition = length(var.allowed_source_ranges) > 0 && alltrue([
      for r in var.allowed_source_ranges : can(cidrhost(r, 0)) && try(tonumber(split("/", r)[1]) >= 8, false)
    ])
    error_message = "allowed_source_ranges must list CIDR ranges, none wider than /8 (never 0.0.0.0/0)."
  }
}

variable "global_access" {
  description = "Admit clients from other regions (the functions' connector is in another region than the cluster)."
  type        = bool
  default     = true
}
