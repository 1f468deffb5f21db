variable "environment" {
  description = "The environment's name, in resource names and labels."
  type        = string
  default     = "prod"

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "project_id" {
  description = "The environment's Google Cloud project (Firebase added to it)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "The region of GKE (NATS), the Cloud Run consumers and the images. Must be in the EEA."
  type        = string
  default     = "europe-north1"

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.region))
    error_message = "region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "functions_region" {
  description = "The Firebase functions' region: functions/main.py's set_global_options(region=...) must equal it. Must be in the EEA."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", var.functions_region))
    error_message = "functions_region must be a Google Cloud region in the EEA (europe-west2 London and europe-west6 Zurich are not)."
  }
}

variable "zones" {
  description = "The three zones of `region` the cluster and the NATS servers spread over."
  type        = list(string)
  default     = ["europe-north1-a", "europe-north1-b", "europe-north1-c"]

  validation {
    condition = length(var.zones) == 3 && length(distinct(var.zones)) == 3 && alltrue([
      for z in var.zones : can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))-[a-z]$", z))
    ])
    error_message = "zones must be three distinct zones in the EEA."
  }
}

variable "firestore_location" {
  description = "Where Firestore keeps the ledger: eur3 (multi-region, Belgium and the Netherlands) or an EEA region. Cannot change later."
  type        = string
  default     = "eur3"

  validation {
    condition     = can(regex("^(eur3|europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12)))$", var.firestore_location))
    error_message = "firestore_location must be eur3 or a Google Cloud region in the EEA."
  }
}

variable "secret_replica_locations" {
  description = "Where Secret Manager keeps the secrets' replicas. All in the EEA."
  type        = list(string)
  default     = ["europe-north1", "europe-west1"]

  validation {
    condition = length(var.secret_replica_locations) > 0 && alltrue([
      for l in var.secret_replica_locations : can(regex("^europe-(central2|north[12]|southwest1|west(1|3|4|8|9|10|12))$", l))
    ])
    error_message = "secret_replica_locations must be Google Cloud regions in the EEA."
  }
}

variable "cidrs" {
  description = "The environment's address plan: GKE nodes, pods and Services, the control plane's /28, the consumers' egress (/26 or larger) and the functions' connector (/28)."
  type = object({
    gke_nodes    = string
    gke_pods     = string
    gke_services = string
    gke_master   = string
    run_egress   = string
    connector    = string
  })
  default = {
    gke_nodes    = "10.20.0.0/22"
    gke_pods     = "10.24.0.0/14"
    gke_services = "10.20.8.0/22"
    gke_master   = "172.16.20.0/28"
    run_egress   = "10.20.12.0/24"
    connector    = "10.20.13.0/28"
  }

  validation {
    condition     = alltrue([for c in values(var.cidrs) : can(cidrhost(c, 0))])
    error_message = "Every entry of cidrs must be an IPv4 CIDR range."
  }
}

variable "master_authorized_networks" {
  description = "Who may reach the GKE control plane (CI runners, the operators' bastion). Never 0.0.0.0/0."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  nullable = false

  validation {
    condition = length(var.master_authorized_networks) > 0 && alltrue([
      for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && try(tonumber(split("/", n.cidr_block)[1]) >= 8, false)
    ])
    error_message = "master_authorized_networks must list at least one CIDR range, none wider than /8."
  }
}

variable "nats_machine_type" {
  description = "Machine type of the three NATS nodes."
  type        = string
  default     = "n2-standard-4"
}

variable "images" {
  description = "Each consumer service's image by digest (REPOSITORY/IMAGE@sha256:<64 hex>), written by CI: the digest that passed the tests is the one that runs. One entry per fjordbank.topology.SERVICES."
  type        = map(string)
  nullable    = false

  validation {
    condition     = alltrue([for image in values(var.images) : can(regex("^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$", image))])
    error_message = "Every image must be pinned by digest (REPOSITORY/IMAGE@sha256:<64 hex>), never by tag alone."
  }
}

variable "min_instances" {
  description = "Instances kept running per consumer service (default 1). Pull consumers never scale to zero."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for n in values(var.min_instances) : n >= 1])
    error_message = "min_instances must be at least 1 for every service: a pull consumer at zero instances never consumes."
  }
}

variable "max_instances" {
  description = "Upper bound of instances per consumer service (default 3; cards and clearing 1, as k8s/render.py's MAX_SCALE: clearing keeps its pain.001/pain.002 exchange with the clearing house, and cards keeps in its process which processor references are being decided and which approvals the processor had, run_services/cards.py References and Delivered: the card service runs alone. The card vault no longer limits it: a Firestore database, modules/card_vault)."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for n in values(var.max_instances) : n >= 1 && n <= 100])
    error_message = "max_instances must be from 1 to 100."
  }

  validation {
    condition     = alltrue([for k, n in var.max_instances : n == 1 if contains(["cards", "clearing"], k)])
    error_message = "max_instances of cards and clearing must be 1: each keeps state in its own process (cards: the processor references in flight and the approvals had; clearing: its file exchange)."
  }
}

variable "bank_regs" {
  description = "The bank's registration numbers (the first four digits of its account numbers), comma-separated: FJB_BANK_REGS of the functions, which tell the bank's own accounts from other banks'."
  type        = string
  default     = "9710"

  validation {
    condition     = can(regex("^[0-9]{4}(,[0-9]{4})*$", var.bank_regs))
    error_message = "bank_regs must be four-digit registration numbers, comma-separated."
  }
}

variable "service_env" {
  description = "Plain configuration per consumer service, variable -> value (fjordbank/config.py, e.g. FJB_BIC for clearing). Secrets never: they come from Secret Manager."
  type        = map(map(string))
  default     = {}

  validation {
    condition     = alltrue(flatten([for env in values(var.service_env) : [for k in keys(env) : !can(regex("(PASSWORD|SECRET|_KEY$|TOKEN)", k))]]))
    error_message = "service_env must not carry secrets (PASSWORD, SECRET, *_KEY, TOKEN)."
  }

  validation {
    condition     = alltrue([for env in values(var.service_env) : !contains(keys(env), "FJB_CLEARING_DIR")])
    error_message = "service_env must not set FJB_CLEARING_DIR: it is where the clearing exchange's bucket is mounted, which main.tf sets."
  }

  validation {
    condition     = alltrue([for env in values(var.service_env) : length(setintersection(keys(env), ["FJB_VAULT_DATABASE", "FJB_CARD_API_PORT"])) == 0])
    error_message = "service_env must not set FJB_VAULT_DATABASE (the card vault's database, which main.tf sets from modules/card_vault: the one the card service alone is granted) or FJB_CARD_API_PORT (the consumer module's serves_card_api: the service's one port)."
  }
}

variable "clearing_transfer_accounts" {
  description = "The transfer service that moves the files between the clearing exchange's bucket and the clearing house: name -> service account e-mail. It may read and write the bucket's objects."
  type        = map(string)
  default     = {}
}

variable "image_pushers" {
  description = "CI's service accounts that may push images: name -> e-mail."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Refuse destroying the cluster and the consumer services."
  type        = bool
  default     = true
}

variable "nats_lb_address" {
  description = "The NATS load balancer's internal address, fixed: clients dial it and the NATS server certificate (k8s/nats/extra/prod) names it. Inside the GKE node subnet."
  type        = string
  default     = "10.20.3.250"
}
