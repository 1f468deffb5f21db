output "email" {
  description = "The service account's e-mail address."
  value       = google_service_account.this.email
}

output "member" {
  description = "The IAM member string (serviceAccount:EMAIL)."
  value       = google_service_account.this.member
}

output "id" {
  description = "The service account's resource ID."
  value       = google_service_account.this.id
}
