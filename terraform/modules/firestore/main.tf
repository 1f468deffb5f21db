# The ledger of record and the app's read model. Native mode, point-in-time recovery (7 days
# of versions to read or restore from), delete protection, and daily and weekly backups.
# The security rules and indexes have one owner: `firebase deploy` (firebase.json deploys
# firestore.rules and firestore.indexes.json); Terraform does not manage them.
#
# A project where Firebase already created "(default)" imports it first:
#   terraform import module.firestore.google_firestore_database.this "projects/PROJECT/databases/(default)"
resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = var.database_id
  location_id                       = var.location_id
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "PESSIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"
}

resource "google_firestore_backup_schedule" "daily" {
  project   = var.project_id
  database  = google_firestore_database.this.name
  retention = var.daily_backup_retention

  daily_recurrence {}
}

resource "google_firestore_backup_schedule" "weekly" {
  project   = var.project_id
  database  = google_firestore_database.this.name
  retention = var.weekly_backup_retention

  weekly_recurrence {
    day = var.weekly_backup_day
  }
}

# App Check on the database itself: the app writes its payment requests (and reads its
# accounts) straight to Firestore under the rules, so without it any script with a user's
# password could create requests in bulk that only the payment trigger's rate limit, after
# each had run, stopped (found in review, 2026-12-06). The callables require App Check
# already (functions/main.py); the services and functions use service accounts, which App
# Check does not ask. Register the apps' attestation providers (Play Integrity, App Attest,
# reCAPTCHA Enterprise) in the Firebase project before this is applied.
resource "google_firebase_app_check_service_config" "firestore" {
  project          = var.project_id
  service_id       = "firestore.googleapis.com"
  enforcement_mode = var.app_check_enforcement
}
