output "cluster_name" {
  description = "The cluster's name (gcloud container clusters get-credentials NAME --region REGION)."
  value       = google_container_cluster.this.name
}

output "cluster_id" {
  description = "The cluster's ID."
  value       = google_container_cluster.this.id
}

output "location" {
  description = "The cluster's region."
  value       = google_container_cluster.this.location
}

output "workload_pool" {
  description = "The Workload Identity pool (PROJECT.svc.id.goog)."
  value       = "${var.project_id}.svc.id.goog"
}

output "node_service_account" {
  description = "The nodes' service account."
  value       = google_service_account.nodes.email
}

output "nats_node_selector" {
  description = "What the NATS chart's podTemplate needs to land on the NATS pool: the node label and the toleration of its taint."
  value = {
    node_label = { "fjordbank-pool" = "nats" }
    toleration = { key = "fjordbank-pool", operator = "Equal", value = "nats", effect = "NoSchedule" }
  }
}
