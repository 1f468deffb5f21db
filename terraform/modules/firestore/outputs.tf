output "database_name" {
  description = "The database's name (\"(default)\" unless set otherwise)."
  value       = google_firestore_database.this.name
}

output "database_id" {
  description = "The database's resource ID."
  value       = google_firestore_database.this.id
}

output "location_id" {
  description = "Where the database lives."
  value       = google_firestore_database.this.location_id
}
