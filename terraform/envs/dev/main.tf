# Fjordbank, development: every GCP resource of the bank, composed from ../../modules.
# One owner per resource (../../README.md): `terraform apply` owns what is here;
# `firebase deploy` owns the functions, Firestore rules and indexes; Helm/kubectl own what
# runs in the cluster (NATS, its load balancer Service, PodMonitoring).

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

locals {
  labels = { "app" = "fjordbank", "env" = var.environment }

  # every NATS identity's service account: the consumers' own, the functions', the admin job's
  identity_service_accounts = merge(
    { for name in module.topology.consumer_services : name => module.consumer_service_account[name].email },
    {
      edge  = module.edge_service_account.email
      admin = module.nats_admin_service_account.email
    },
  )

  # least privilege of every consumer: its ledger and read model in Firestore, its logs,
  # metrics and trace spans (fjordbank/runtime/tracing.py exports to Cloud Trace). Topic and
  # secret rights are granted on the topic and the secrets themselves.
  consumer_roles = [
    "roles/datastore.user",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
  ]

  # roles/datastore.user is granted on the project, where it reaches every Firestore database,
  # the card vault's too (modules/card_vault). Every grant of it here is conditioned to the
  # ledger's "(default)" database: the card vault's database is reached by the card services'
  # own grant alone. The form is Firestore's "Configure per-database access permissions"
  # (manage-databases): "grant access to a database", resource.name ==
  # "projects/PROJECT_ID/databases/DATABASE_ID". The same page's other form, "all except one
  # database" (resource.name != ".../databases/card-vault"), would also hand every service any
  # database added later; this one names the only database they use.
  firestore_default_only = {
    "roles/datastore.user" = {
      title       = "firestore-default-database-only"
      description = "The ledger's (default) Firestore database only: never the card vault's."
      expression  = "resource.name == \"projects/${module.project.project_id}/databases/${module.firestore.database_name}\""
    }
  }

  # The file exchange with the clearing house, mounted into each clearing service where
  # FJB_CLEARING_DIR points: in production the service has no default and refuses to start
  # without it (fjordbank/config.py, Settings.clearing_channel). The deploy workflow puts the
  # EU sanctions list beside it (sanctions/eu-fsf.xml), where FJB_SANCTIONS_LIST points: the
  # service screens every payer of a payment from another bank against it and refuses to
  # start without it (Settings.screening_list); it reads a new list when the file changes.
  # The screening service screens every payee of a payment to another bank against the same
  # list: it mounts the bucket read-only at the same path, and may read nothing of it but the
  # list (the module's list_readers; it may list the payment files' names, not read them).
  clearing_dir   = "/mnt/clearing"
  sanctions_list = "${local.clearing_dir}/sanctions/eu-fsf.xml"
  storage_volumes = merge(
    {
      for name in module.topology.clearing_services : name => {
        clearing = { bucket = module.clearing_exchange.bucket_name, mount_path = local.clearing_dir }
      }
    },
    {
      for name in module.topology.sanctions_readers : name => {
        clearing = { bucket = module.clearing_exchange.bucket_name, mount_path = local.clearing_dir, read_only = true }
      }
    },
  )

  # The card vault of each card service: a Firestore database of its own (modules/card_vault),
  # which FJB_VAULT_DATABASE names (fjordbank/config.py; the Knative path sets the same,
  # k8s/render.py CARD_VAULT_DATABASE). Set from the module's output, so that a card service
  # starts after the database, its grant and its deny-all rules exist.
  service_env = {
    for name in module.topology.consumer_services : name => merge(
      lookup(var.service_env, name, {}),
      contains(module.topology.clearing_services, name) ? { FJB_CLEARING_DIR = local.clearing_dir, FJB_SANCTIONS_LIST = local.sanctions_list } : {},
      contains(module.topology.sanctions_readers, name) ? { FJB_SANCTIONS_LIST = local.sanctions_list } : {},
      contains(module.topology.card_services, name) ? { FJB_VAULT_DATABASE = module.card_vault.database_name } : {},
    )
  }
}

module "topology" {
  source = "../../modules/topology"
}

module "project" {
  source     = "../../modules/project"
  project_id = var.project_id
}

module "network" {
  source            = "../../modules/network"
  project_id        = module.project.project_id
  name              = "fjordbank"
  region            = var.region
  functions_region  = var.functions_region
  gke_nodes_cidr    = var.cidrs.gke_nodes
  gke_pods_cidr     = var.cidrs.gke_pods
  gke_services_cidr = var.cidrs.gke_services
  run_egress_cidr   = var.cidrs.run_egress
  connector_cidr    = var.cidrs.connector
}

module "gke" {
  source                     = "../../modules/gke"
  project_id                 = module.project.project_id
  name                       = "fjordbank-${var.environment}"
  region                     = var.region
  zones                      = var.zones
  network_id                 = module.network.network_id
  subnetwork_id              = module.network.gke_subnetwork_id
  pods_range_name            = module.network.gke_pods_range_name
  services_range_name        = module.network.gke_services_range_name
  master_ipv4_cidr           = var.cidrs.gke_master
  master_authorized_networks = var.master_authorized_networks
  nats_node_tag              = module.network.nats_node_tag
  nats_machine_type          = var.nats_machine_type
  deletion_protection        = var.deletion_protection
  labels                     = local.labels
}

module "nats_lb" {
  source                = "../../modules/nats_lb"
  project_id            = module.project.project_id
  region                = var.region
  subnetwork_id         = module.network.gke_subnetwork_id
  allowed_source_ranges = module.network.nats_client_source_ranges
  address               = var.nats_lb_address
}

module "artifact_registry" {
  source     = "../../modules/artifact_registry"
  project_id = module.project.project_id
  location   = var.region
  writers    = var.image_pushers
  labels     = local.labels
}

module "firestore" {
  source      = "../../modules/firestore"
  project_id  = module.project.project_id
  location_id = var.firestore_location
}

# The Firebase functions' runtime identity (NATS user "edge"): functions/main.py must run
# as it (set_global_options(service_account=...)); `firebase deploy` owns the functions.
module "edge_service_account" {
  source       = "../../modules/service_account"
  project_id   = module.project.project_id
  account_id   = "fjb-edge"
  display_name = "Fjordbank edge (Firebase functions)"
  description  = "Runs the Firebase functions: validates app requests, publishes to NATS, sends FCM pushes."
  project_roles = [
    "roles/datastore.user", # the (default) database only: local.firestore_default_only
    "roles/eventarc.eventReceiver",
    "roles/firebasecloudmessaging.admin", # on_push sends through FCM (the notifier only queues)
    # sca_revoke_key (signOutEverywhere) and sca_reopen_enrolment revoke a customer's refresh
    # tokens (firebaseauth.users.update; no narrower predefined role has it)
    "roles/firebaseauth.admin",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent", # each payment's trace starts in on_payment_request (Cloud Trace)
  ]
  project_role_conditions = local.firestore_default_only
}

# NATS user "admin": the job that creates streams and consumers (Workload Identity on GKE)
# and operators' tools. No project roles: it reads its own secrets only.
module "nats_admin_service_account" {
  source       = "../../modules/service_account"
  project_id   = module.project.project_id
  account_id   = "fjb-nats-admin"
  display_name = "Fjordbank NATS admin"
  description  = "Creates JetStream streams and consumers from fjordbank/topology.py; never a service."
}

# Each consumer service's own identity (NATS user NAME).
module "consumer_service_account" {
  source   = "../../modules/service_account"
  for_each = toset(module.topology.consumer_services)

  project_id    = module.project.project_id
  account_id    = "fjb-${each.key}"
  display_name  = "Fjordbank consumer ${each.key}"
  description   = "Runs the ${each.key} consumer service on Cloud Run (or Knative on GKE); NATS user ${each.key}."
  project_roles = local.consumer_roles
  # the (default) database only; a card service's vault grant is modules/card_vault's
  project_role_conditions = local.firestore_default_only
  # the Knative consumer's Kubernetes service account (k8s/render.py), on the GKE path
  workload_identity_users = ["fjordbank/fjb-${each.key}"]
}

module "secrets" {
  source            = "../../modules/secrets"
  project_id        = module.project.project_id
  replica_locations = var.secret_replica_locations
  ca_secret_id      = module.topology.nats_ca_secret_id
  labels            = local.labels
  # the NATS system user's password (k8s/README.md: the bcrypt Secret needs it)
  system_password_secret_id = module.topology.nats_system_password_secret_id
  identities = {
    for id in module.topology.nats_identities : id => {
      service_account = local.identity_service_accounts[id]
      secrets = merge(
        module.topology.nats_secret_ids[id],
        { for env, secret_id in lookup(module.topology.service_secret_env, id, {}) : lower(env) => secret_id },
      )
    }
  }
}

module "consumer" {
  source   = "../../modules/consumer"
  for_each = toset(module.topology.consumer_services)

  project_id            = module.project.project_id
  name                  = each.key
  region                = var.region
  image                 = var.images[each.key]
  service_account_email = module.consumer_service_account[each.key].email
  min_instances         = lookup(var.min_instances, each.key, 1)
  max_instances         = lookup(var.max_instances, each.key, contains(["cards", "clearing"], each.key) ? 1 : 3) # one each: variables.tf says why
  network_id            = module.network.network_id
  subnetwork_id         = module.network.run_egress_subnetwork_id
  nats_urls             = module.nats_lb.nats_urls
  nats_secrets = {
    password = module.secrets.secret_ids[each.key].password
    tls_cert = module.secrets.secret_ids[each.key].tls_cert
    tls_key  = module.secrets.secret_ids[each.key].tls_key
    ca       = module.secrets.ca_secret_id
  }
  secret_env = {
    for env, _ in lookup(module.topology.service_secret_env, each.key, {}) : env => module.secrets.secret_ids[each.key][lower(env)]
  }
  # serves_card_api, max_concurrency: the card services serve the processor's API on their
  # HTTP port (FJB_CARD_API_PORT = FJB_HTTP_PORT), and are sent as many requests at once as
  # its server answers, not the probes' 10 (null: the module's default)
  env                 = local.service_env[each.key]
  storage_volumes     = lookup(local.storage_volumes, each.key, {})
  serves_card_api     = contains(module.topology.card_services, each.key)
  max_concurrency     = contains(module.topology.card_services, each.key) ? module.topology.card_api_max_connections : null
  deletion_protection = var.deletion_protection
  labels              = local.labels
}

# The card vault (FJB_VAULT_DATABASE of the card services, above): a Firestore database of
# its own beside "(default)", in the same location, with point-in-time recovery, delete
# protection, daily and weekly backups and deny-all security rules. Only the card services'
# identities may use it (each gets roles/datastore.user conditioned to it; every other
# datastore.user grant is conditioned to "(default)": local.firestore_default_only).
module "card_vault" {
  source      = "../../modules/card_vault"
  project_id  = module.project.project_id
  location_id = module.firestore.location_id
  users       = { for name in module.topology.card_services : name => module.consumer_service_account[name].email }
}

# The clearing house's file exchange (FJB_CLEARING_DIR of the clearing services): read and
# written by them through the mount and by the transfer service that talks to the house.
module "clearing_exchange" {
  source     = "../../modules/clearing_exchange"
  project_id = module.project.project_id
  name       = "${var.project_id}-clearing"
  location   = var.region
  exchangers = merge(
    { for name in module.topology.clearing_services : name => module.consumer_service_account[name].email },
    var.clearing_transfer_accounts,
  )
  # the sanctions list under sanctions/: read by the clearing services and the sanctions
  # readers (screening), written by the deploy only
  list_readers = { for name in concat(module.topology.clearing_services, module.topology.sanctions_readers) : name => module.consumer_service_account[name].email }
  labels       = local.labels
}

module "pubsub_scheduler" {
  source              = "../../modules/pubsub_scheduler"
  project_id          = module.project.project_id
  push_topic          = module.topology.push_topic
  jobs_topic          = module.topology.jobs_topic
  jobs                = module.topology.scheduled_jobs
  scheduler_region    = var.functions_region
  persistence_regions = distinct([var.region, var.functions_region])
  push_publishers     = { for name in module.topology.push_publishers : name => module.consumer_service_account[name].email }
  jobs_publishers     = { edge = module.edge_service_account.email }
  labels              = local.labels
}

# The functions' counters (fjb_edge_requests, fjb_push_results): log-based metrics over
# their structured log lines (fjordbank/runtime/log_metrics.py).
module "logging_metrics" {
  source     = "../../modules/logging_metrics"
  project_id = module.project.project_id
}
