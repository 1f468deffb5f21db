output "project_id" {
  description = "The project ID, available once every API is enabled (depend on this, not on the variable)."
  value       = var.project_id
  depends_on  = [google_project_service.this]
}

output "services" {
  description = "The APIs enabled in the project."
  value       = sort([for s in google_project_service.this : s.service])
}
