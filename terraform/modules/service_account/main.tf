# A service account with project-level roles: the identity of something Terraform does not
# deploy itself (the Firebase functions; the NATS admin job) or of a consumer service, so that
# its least privilege is written down here. A project role may carry an IAM condition
# (project_role_conditions): a project-wide role such as roles/datastore.user otherwise
# reaches every Firestore database of the project.
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

  # A role listed in project_role_conditions holds only where its expression does, e.g.
  # roles/datastore.user on the "(default)" Firestore database alone, never the card vault's.
  dynamic "condition" {
    for_each = contains(keys(var.project_role_conditions), each.value) ? [var.project_role_conditions[each.value]] : []
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }

  lifecycle {
    # A grant's condition cannot change in place: the new binding is made before the old one
    # goes, so the account never runs without the role while a condition is added or changed.
    create_before_destroy = true

    precondition {
      condition     = alltrue([for role in keys(var.project_role_conditions) : contains(var.project_roles, role)])
      error_message = "project_role_conditions may only condition roles listed in project_roles."
    }
  }
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
