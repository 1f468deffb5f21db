# A service account with project-level roles: the identity of something Terraform does not
# deploy itself (the Firebase functions; the NATS admin job), so that its least privilege is
# still written down here.
resource "google_service_account" "this" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = var.display_name
  description  = var.description
}

resource "google_project_iam_member" "this" {
  for_each = var.project_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.this.email}"
}

# Kubernetes service accounts that may act as this one (GKE Workload Identity: the Knative
# consumers' fjb-NAME in namespace fjordbank, k8s/render.py). The cluster's workload pool is
# PROJECT.svc.id.goog (modules/gke).
resource "google_service_account_iam_member" "workload_identity" {
  for_each = var.workload_identity_users

  service_account_id = google_service_account.this.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.value}]"
}
