# The file exchange with the clearing house: the folder FJB_CLEARING_DIR of the clearing
# service (run_services/clearing.py; fjordbank/config.py gives it no default in production).
# The service writes pain.001 files to outbox/ and reads pain.002 answers from inbox/, moving
# each to processed/ once handled (fjordbank/adapters/clearing_store.py: a file is written
# under a temporary name, fsynced and renamed). The transfer service moves the files between
# this bucket and the clearing house. The bucket outlives any instance of the service: a file
# recorded in Firestore but not yet written is written again after a restart, and an answer
# waits in inbox/ while the service is down.
#
# Cloud Run mounts the bucket with Cloud Storage FUSE (the consumer module's storage_volumes;
# gen2 execution environment). Every write is versioned: a payment file is never lost to an
# overwrite or a delete, and old versions go after noncurrent_days.
resource "google_storage_bucket" "this" {
  # checkov:skip=CKV_GCP_62:Access to the files is for Cloud Audit Logs to record (Data Access logs for Cloud Storage, an audit configuration of the organisation's that this repository does not manage); legacy usage logs would need a second bucket of access logs in the EEA.
  project                     = var.project_id
  name                        = var.name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# The EU sanctions list the clearing service screens payers against lives beside the files,
# under sanctions/ (its FJB_SANCTIONS_LIST on the mount): the deploy writes it, the clearing
# services read it, and nobody who moves the payment files may change it.
locals {
  sanctions_objects = "projects/_/buckets/${var.name}/objects/sanctions/"
}

# Read, write, rename and delete objects (roles/storage.objectUser), on this bucket only and
# not under sanctions/: the clearing services (run through the mount) and the transfer service.
resource "google_storage_bucket_iam_member" "exchangers" {
  for_each = var.exchangers

  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${each.value}"

  condition {
    title       = "payment-files-only"
    description = "Every object but the sanctions list under sanctions/, which only the deploy writes."
    expression  = "!resource.name.startsWith(\"${local.sanctions_objects}\")"
  }
}

# Read the sanctions list (roles/storage.objectViewer on sanctions/ only): the clearing services
# and the screening service. The bucket itself is in the condition too: listing objects is a
# request on the bucket, which Cloud Storage FUSE makes when it mounts the bucket and looks up
# sanctions/ (a reader sees the payment files' names, and may read none of them).
resource "google_storage_bucket_iam_member" "list_readers" {
  for_each = var.list_readers

  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${each.value}"

  condition {
    title       = "sanctions-list-only"
    description = "The sanctions list under sanctions/, and listing the bucket's object names."
    expression  = "resource.name.startsWith(\"${local.sanctions_objects}\") || resource.name == \"projects/_/buckets/${var.name}\""
  }
}
