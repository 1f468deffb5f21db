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
