output "secret_ids" {
  description = "Per identity: kind -> secret ID, available once the identity may read them (a Cloud Run revision that mounts a secret it cannot read never starts)."
  value       = { for id, v in var.identities : id => { for kind, secret_id in v.secrets : kind => google_secret_manager_secret.this[secret_id].secret_id } }
  depends_on  = [google_secret_manager_secret_iam_member.accessor, google_secret_manager_secret_iam_member.ca]
}

output "ca_secret_id" {
  description = "The CA certificate's secret ID, available once every identity may read it."
  value       = google_secret_manager_secret.ca.secret_id
  depends_on  = [google_secret_manager_secret_iam_member.ca]
}

output "system_password_secret_id" {
  description = "The NATS system user's password secret ID (no service reads it)."
  value       = google_secret_manager_secret.system.secret_id
}

output "secret_names" {
  description = "Every secret's full resource name (projects/P/secrets/ID), for `gcloud secrets versions add`."
  value       = sort(concat([for s in google_secret_manager_secret.this : s.name], [google_secret_manager_secret.ca.name, google_secret_manager_secret.system.name]))
}
