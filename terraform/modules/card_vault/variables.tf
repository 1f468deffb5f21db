variable "project_id" {
  description = "The project of the Filestore instance."
  type        = string
  nullable    = false
}

variable "name" {
  description = "The Filestore instance's name, e.g. fjordbank-card-vault."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.name))
    error_message = "name must be 2-63 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "location" {
  description = "Where the instance lives: a zone of the card service's region for the BASIC tiers (e.g. europe-north1-a). Must be in the EEA (card numbers)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))-[a-z]$", var.location))
    error_message = "location must be a zone of a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "tier" {
  description = "The Filestore service tier: BASIC_HDD (the smallest and cheapest: from 1 TiB) or BASIC_SSD (from 2.5 TiB). Both are zonal and take a /29 reserved range; neither supports CMEK."
  type        = string
  default     = "BASIC_HDD"
  nullable    = false

  validation {
    condition     = contains(["BASIC_HDD", "BASIC_SSD"], var.tier)
    error_message = "tier must be BASIC_HDD or BASIC_SSD."
  }
}

variable "capacity_gb" {
  description = "The share's size in GB (GiB). A BASIC_HDD share has at least 1024 (1 TiB, billed whole even though the vault holds a few MB); BASIC_SSD at least 2560."
  type        = number
  default     = 1024
  nullable    = false

  validation {
    condition     = var.capacity_gb >= 1024 && floor(var.capacity_gb) == var.capacity_gb
    error_message = "capacity_gb must be a whole number of at least 1024: a basic Filestore share is at least 1 TiB."
  }
}

variable "share_name" {
  description = "The file share's name: the NFS path is /SHARE_NAME."
  type        = string
  default     = "vault"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.share_name))
    error_message = "share_name must be 1-16 lowercase letters, digits and underscores, starting with a letter."
  }
}

variable "network_name" {
  description = "The name (not the ID) of the bank's VPC (network module's network_name): the card service reaches the share through its Direct VPC egress."
  type        = string
  nullable    = false
}

variable "reserved_ip_range" {
  description = "The /29 the instance takes its address from (DIRECT_PEERING): internal, and outside every subnet of the VPC and the GKE ranges."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.reserved_ip_range, 0)) && endswith(var.reserved_ip_range, "/29")
    error_message = "reserved_ip_range must be an IPv4 /29 range (a basic Filestore instance's)."
  }
}

variable "client_ranges" {
  description = "The only ranges that may mount the share, read-write: the consumers' Direct VPC egress range (network module's run_egress_cidr)."
  type        = list(string)
  nullable    = false

  validation {
    condition = length(var.client_ranges) > 0 && alltrue([
      for r in var.client_ranges : can(cidrhost(r, 0)) && try(tonumber(split("/", r)[1]) >= 16, false)
    ])
    error_message = "client_ranges must list at least one IPv4 CIDR range, none wider than /16."
  }
}

variable "deletion_protection" {
  description = "Refuse deleting the instance (and the card numbers on it). On in every environment, like Firestore's delete protection."
  type        = bool
  default     = true
  nullable    = false
}

variable "labels" {
  description = "Labels on the instance."
  type        = map(string)
  default     = {}
}
