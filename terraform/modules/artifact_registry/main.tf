# The images of the consumer services. Tags are immutable: a tag names one build forever,
# and deployments refer to images by digest anyway (the consumer module refuses a tag).
resource "google_artifact_registry_repository" "this" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption. The images hold no customer data (config and code only); a CMEK key ring is an organisation-level choice this module leaves to the team that adopts it.
  project       = var.project_id
  location      = var.location
  repository_id = var.repository_id
  format        = "DOCKER"
  description   = "Fjordbank service images (immutable tags, deployed by digest)."
  labels        = var.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = var.keep_recent
    }
  }

  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"

    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }
}

resource "google_artifact_registry_repository_iam_member" "writers" {
  for_each = var.writers

  project    = var.project_id
  location   = google_artifact_registry_repository.this.location
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${each.value}"
}
