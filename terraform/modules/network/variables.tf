variable "project_id" {
  description = "The project the network lives in."
  type        = string
  nullable    = false
}

variable "name" {
  description = "The VPC's name; subnets, router, NAT, connector and firewall rules are named after it."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name))
    error_message = "name must be 2-12 lowercase letters, digits and hyphens, starting with a letter (the connector is NAME-functions, at most 25 characters)."
  }
}

variable "region" {
  description = "The region of GKE (NATS) and the Cloud Run consumers. Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.region))
    error_message = "region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "functions_region" {
  description = "The region of the Firebase functions, where their Serverless VPC Access connector must be. Must be in the EEA."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.functions_region))
    error_message = "functions_region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "gke_nodes_cidr" {
  description = "Primary range of the GKE nodes' subnet (also where the NATS internal load balancer's address comes from)."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.gke_nodes_cidr, 0)) && try(tonumber(split("/", var.gke_nodes_cidr)[1]) <= 24, false)
    error_message = "gke_nodes_cidr must be an IPv4 CIDR range of /24 or larger."
  }
}

variable "gke_pods_cidr" {
  description = "Secondary range for GKE pods (VPC-native)."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.gke_pods_cidr, 0)) && try(tonumber(split("/", var.gke_pods_cidr)[1]) <= 20, false)
    error_message = "gke_pods_cidr must be an IPv4 CIDR range of /20 or larger."
  }
}

variable "gke_services_cidr" {
  description = "Secondary range for GKE Services (ClusterIPs)."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.gke_services_cidr, 0)) && try(tonumber(split("/", var.gke_services_cidr)[1]) <= 24, false)
    error_message = "gke_services_cidr must be an IPv4 CIDR range of /24 or larger."
  }
}

variable "run_egress_cidr" {
  description = "The subnet Cloud Run consumers send through (Direct VPC egress). Each instance takes 2 addresses, and revisions overlap during a deploy: /26 or larger."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.run_egress_cidr, 0)) && try(tonumber(split("/", var.run_egress_cidr)[1]) <= 26, false)
    error_message = "run_egress_cidr must be an IPv4 CIDR range of /26 or larger."
  }
}

variable "connector_cidr" {
  description = "The /28 subnet of the functions' Serverless VPC Access connector (the Python Functions SDK takes only a connector, not Direct VPC egress)."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && try(split("/", var.connector_cidr)[1] == "28", false)
    error_message = "connector_cidr must be an IPv4 /28 range (what a Serverless VPC Access connector requires)."
  }
}

variable "connector_machine_type" {
  description = "Machine type of the connector's instances."
  type        = string
  default     = "e2-micro"

  validation {
    condition     = contains(["f1-micro", "e2-micro", "e2-standard-4"], var.connector_machine_type)
    error_message = "connector_machine_type must be f1-micro, e2-micro or e2-standard-4."
  }
}

variable "connector_instances" {
  description = "Minimum and maximum number of connector instances (2 <= min < max <= 10)."
  type = object({
    min = number
    max = number
  })
  default = { min = 2, max = 3 }

  validation {
    condition     = var.connector_instances.min >= 2 && var.connector_instances.max <= 10 && var.connector_instances.min < var.connector_instances.max
    error_message = "connector_instances must satisfy 2 <= min < max <= 10."
  }
}

variable "nats_node_tag" {
  description = "Network tag of the GKE nodes that run NATS: the firewall admits NATS clients to these nodes only."
  type        = string
  default     = "fjb-nats"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.nats_node_tag))
    error_message = "nats_node_tag must be a network tag (lowercase letters, digits, hyphens)."
  }
}

variable "nats_client_port" {
  description = "NATS's client port, the only port the firewall opens to the consumers and the functions."
  type        = number
  default     = 4222

  validation {
    condition     = var.nats_client_port == 4222
    error_message = "nats_client_port is NATS's client port 4222; the monitoring port 8222 is never opened."
  }
}
