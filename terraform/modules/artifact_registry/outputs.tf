output "repository_id" {
  description = "The repository's resource ID (projects/P/locations/L/repositories/R)."
  value       = google_artifact_registry_repository.this.id
}

output "repository_name" {
  description = "The repository's short name."
  value       = google_artifact_registry_repository.this.repository_id
}

output "location" {
  description = "The repository's region."
  value       = google_artifact_registry_repository.this.location
}
