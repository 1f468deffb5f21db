output "consumer_services" {
  description = "The consumer services (fjordbank.topology.SERVICES)."
  value       = local.consumer_services
}

output "nats_identities" {
  description = "Every NATS identity (fjordbank.topology.IDENTITIES)."
  value       = local.nats_identities
}

output "push_topic" {
  description = "The Pub/Sub topic of push notifications (fjordbank.adapters.pubsub.PUSH_TOPIC)."
  value       = local.push_topic
}

output "jobs_topic" {
  description = "The Pub/Sub topic of scheduled jobs (fjordbank.adapters.pubsub.JOBS_TOPIC)."
  value       = local.jobs_topic
}

output "scheduled_jobs" {
  description = "The scheduled jobs (fjordbank.service_layer.scheduled.JOBS) with their schedule and description."
  value       = local.scheduled_jobs
}

output "nats_secret_ids" {
  description = "Per NATS identity: its password, client certificate and key secret IDs."
  value       = local.nats_secret_ids
}

output "nats_ca_secret_id" {
  description = "The secret holding the CA certificate of the NATS cluster."
  value       = local.nats_ca_secret_id
}

output "nats_system_password_secret_id" {
  description = "The secret holding the password of the NATS system user (k8s/render.py SYSTEM_USER)."
  value       = local.nats_system_password_secret_id
}

output "service_secret_env" {
  description = "Per consumer service: its secrets beyond NATS, environment variable -> secret ID."
  value       = local.service_secret_env
}

output "push_publishers" {
  description = "The consumer services that publish on the push topic."
  value       = local.push_publishers
}

output "clearing_services" {
  description = "The consumer services that exchange files with the clearing house (FJB_CLEARING_DIR)."
  value       = local.clearing_services
}

output "sanctions_readers" {
  description = "The consumer services that read the sanctions list (FJB_SANCTIONS_LIST) and exchange no files: the clearing bucket mounted read-only, the list alone readable."
  value       = local.sanctions_readers
}

output "card_services" {
  description = "The consumer services that keep the card vault (FJB_VAULT_DATABASE, the card_vault module's Firestore database, granted to them alone) and serve the card processor's API on their HTTP port (FJB_CARD_API_PORT)."
  value       = local.card_services
}

output "card_api_max_connections" {
  description = "The requests the card processor's API server answers at once (fjordbank.runtime.http.MAX_CONNECTIONS): a card service's request concurrency."
  value       = local.card_api_max_connections
}
