# The card vault: the only place a full card number lives (fjordbank/adapters/vault.py). A
# Firestore database of its own, FJB_VAULT_DATABASE of the card service (default
# "card-vault"; fjordbank/config.py refuses "(default)"), beside the ledger's "(default)"
# in the same project and location. The card service seals each number with AES-256-GCM
# under FJB_VAULT_KEY before it leaves the process; Firestore adds Google-managed encryption
# at rest.
#
# Why a database and not a file: the vault was one SQLite file on a Filestore NFS share,
# which Cloud Run mounts without the NFS lock manager (nolock), so only one instance could
# use it, and a rollout ran the old and the new revision on the file at once. Here a card is
# stored as one batch of two create-only writes (vaultCards/{cardId} and
# vaultPans/{fingerprint}): a card stored twice or a card number drawn twice fails the batch
# whole, on any number of instances, rollouts included. Point-in-time recovery and managed
# backups come with it, and no 1 TiB share is billed for a few MB.
#
# Who reaches it: the card services' identities alone (users, below). Every other grant of
# roles/datastore.user in the environments is conditioned to the "(default)" database.
# Clients (the app's Firebase SDKs) never: the database's security rules deny everything.
resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = var.database_id
  location_id                       = var.location_id
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "PESSIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` (or the database leaving this configuration) forgets the database,
  # never deletes it with the card numbers in it
  deletion_policy = "ABANDON"
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

# roles/datastore.user on the project, conditioned to this database: the card service reads
# and creates the vault's documents and nothing else through this grant (its "(default)"
# grant is the environments', conditioned the other way). The expression is the form of
# Firestore's "Configure per-database access permissions" (manage-databases: grant access to
# a database), resource.name == "projects/PROJECT_ID/databases/DATABASE_ID".
resource "google_project_iam_member" "users" {
  for_each = var.users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${each.value}"

  condition {
    title       = "card-vault-only"
    description = "The card vault's Firestore database (${google_firestore_database.this.name}) only."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.this.name}\""
  }
}

# No client may read or write the vault: its own rules, deny-all, released to the database.
# A named database's release is cloud.firestore/DATABASE_ID (the "(default)" one's is
# cloud.firestore, which `firebase deploy --only firestore` owns with firestore.rules).
# Server identities go by IAM alone (above), which rules never apply to.
resource "google_firebaserules_ruleset" "deny_all" {
  project = var.project_id

  source {
    files {
      name    = "${var.database_id}.rules"
      content = <<-EOT
        rules_version = '2';
        // The card vault (terraform/modules/card_vault): no client, ever. The card service
        // reaches it by IAM, which these rules do not apply to.
        service cloud.firestore {
          match /databases/{database}/documents {
            match /{document=**} {
              allow read, write: if false;
            }
          }
        }
      EOT
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_firebaserules_release" "this" {
  project      = var.project_id
  name         = "cloud.firestore/${google_firestore_database.this.name}"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.deny_all.name}"
}
