# What functions/main.py and the in-cluster objects must use. `terraform output -json` is
# the source; tests/deploy checks the names that are constants in the code.

output "functions_region" {
  description = "set_global_options(region=...) in functions/main.py."
  value       = var.functions_region
}

output "functions_service_account" {
  description = "set_global_options(service_account=...): the functions' runtime identity (NATS user edge)."
  value       = module.edge_service_account.email
}

output "vpc_connector" {
  description = "set_global_options(vpc_connector=...): the Serverless VPC Access connector the functions reach NATS through."
  value       = module.network.vpc_connector_id
}

output "vpc_connector_name" {
  description = "The connector's short name."
  value       = module.network.vpc_connector_name
}

output "vpc_connector_egress_settings" {
  description = "set_global_options(vpc_connector_egress_settings=...): only private ranges go through the connector."
  value       = "PRIVATE_RANGES_ONLY"
}

output "functions_secrets" {
  description = "The edge's secrets (password, certificate, key, CA): the functions bind them by these names (NATS_SECRETS)."
  value       = module.secrets.secret_ids["edge"]
}

output "push_topic" {
  description = "The push topic (fjordbank.adapters.pubsub.PUSH_TOPIC)."
  value       = module.pubsub_scheduler.push_topic
}

output "jobs_topic" {
  description = "The jobs topic (fjordbank.adapters.pubsub.JOBS_TOPIC)."
  value       = module.pubsub_scheduler.jobs_topic
}

output "scheduler_jobs" {
  description = "The Cloud Scheduler jobs (fjordbank.service_layer.scheduled.JOBS)."
  value       = module.pubsub_scheduler.scheduler_jobs
}

output "nats_urls" {
  description = "FJB_NATS_URLS for every NATS client."
  value       = module.nats_lb.nats_urls
}

output "nats_lb_address" {
  description = "The NATS internal load balancer's reserved address."
  value       = module.nats_lb.address
}

output "nats_service_annotations" {
  description = "The NATS client Service's annotations (k8s/nats)."
  value       = module.nats_lb.service_annotations
}

output "nats_load_balancer_source_ranges" {
  description = "The NATS client Service's loadBalancerSourceRanges (k8s/nats)."
  value       = module.nats_lb.load_balancer_source_ranges
}

output "nats_node_selector" {
  description = "Node label and toleration of the NATS node pool (k8s/nats values' podTemplate)."
  value       = module.gke.nats_node_selector
}

output "nats_admin_service_account" {
  description = "The NATS admin identity (the stream/consumer job, through Workload Identity)."
  value       = module.nats_admin_service_account.email
}

output "consumer_service_accounts" {
  description = "Each consumer service's own service account."
  value       = { for name in module.topology.consumer_services : name => module.consumer_service_account[name].email }
}

output "consumer_services" {
  description = "Each consumer service's Cloud Run URL (internal: probes and metrics)."
  value       = { for name in module.topology.consumer_services : name => module.consumer[name].uri }
}

output "secret_names" {
  description = "Every secret to give a version (gcloud secrets versions add)."
  value       = module.secrets.secret_names
}

output "gke_cluster_name" {
  description = "The GKE cluster (gcloud container clusters get-credentials NAME --region REGION)."
  value       = module.gke.cluster_name
}

output "artifact_registry_repository" {
  description = "The image repository's resource ID."
  value       = module.artifact_registry.repository_id
}

output "firestore_database" {
  description = "The Firestore database."
  value       = module.firestore.database_name
}

output "clearing_exchange_bucket" {
  description = "The clearing house's file exchange (gs:// URL), mounted into the clearing service at FJB_CLEARING_DIR: the transfer service takes pain.001 files from outbox/ and puts pain.002 answers in inbox/."
  value       = module.clearing_exchange.bucket_url
}

output "bank_regs" {
  description = "FJB_BANK_REGS of the functions (scripts/functions_env.py): the bank's registration numbers."
  value       = var.bank_regs
}

output "card_vault_database" {
  description = "The card vault's Firestore database (FJB_VAULT_DATABASE of the card services): only their identities may use it, and its rules deny every client."
  value       = module.card_vault.database_name
}
