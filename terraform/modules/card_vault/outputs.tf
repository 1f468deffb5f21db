output "database_name" {
  description = "The vault's database ID: FJB_VAULT_DATABASE of the card services. Known once their grants and the deny-all rules are in place, so a card service that reads it starts after them."
  value       = google_firestore_database.this.name
  depends_on  = [google_project_iam_member.users, google_firebaserules_release.this]
}

output "database_id" {
  description = "The database's resource ID (projects/PROJECT/databases/DATABASE)."
  value       = google_firestore_database.this.id
}

output "location_id" {
  description = "Where the vault lives (the (default) database's location)."
  value       = google_firestore_database.this.location_id
}

output "rules_release" {
  description = "The release of the vault's deny-all security rules (cloud.firestore/DATABASE)."
  value       = google_firebaserules_release.this.name
}
