output "service_name" {
  description = "The Cloud Run service's name."
  value       = google_cloud_run_v2_service.this.name
}

output "service_id" {
  description = "The Cloud Run service's ID."
  value       = google_cloud_run_v2_service.this.id
}

output "uri" {
  description = "The service's internal URL (probes and metrics; the card service's also takes the card processor's API)."
  value       = google_cloud_run_v2_service.this.uri
}

output "service_account_email" {
  description = "The service account the service runs as."
  value       = google_cloud_run_v2_service.this.template[0].service_account
}

output "latest_ready_revision" {
  description = "The revision that serves (its startup probe passed: NATS was reachable)."
  value       = google_cloud_run_v2_service.this.latest_ready_revision
}
