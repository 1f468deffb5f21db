# One Secret Manager secret per NATS identity and kind (password, client certificate and
# key, and a service's own secrets), each readable by exactly that identity's service
# account: never a project-wide secretAccessor. Terraform creates the secrets, never their
# values: versions are added out of band (terraform/README.md), so no secret is in the state.
locals {
  secrets = merge([
    for id, v in var.identities : {
      for kind, secret_id in v.secrets : secret_id => {
        identity        = id
        kind            = kind
        service_account = v.service_account
      }
    }
  ]...)
}

resource "google_secret_manager_secret" "this" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = each.key
  labels    = merge(var.labels, { "nats-identity" = each.value.identity })

  replication {
    user_managed {
      dynamic "replicas" {
        for_each = var.replica_locations
        content {
          location = replicas.value
        }
      }
    }
  }
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.key].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.service_account}"
}

# The CA certificate is not secret, but every client mounts it next to its own certificate.
resource "google_secret_manager_secret" "ca" {
  project   = var.project_id
  secret_id = var.ca_secret_id
  labels    = var.labels

  replication {
    user_managed {
      dynamic "replicas" {
        for_each = var.replica_locations
        content {
          location = replicas.value
        }
      }
    }
  }
}

# The NATS system account's user (k8s/render.py SYSTEM_USER "system", account SYS): its
# bcrypt hash is in the servers' Secret nats-users-bcrypt with every identity's, and
# operators use it for `nats server` commands. No service reads it: no accessor binding
# (operators read it with their own rights, like every secret's versions).
resource "google_secret_manager_secret" "system" {
  project   = var.project_id
  secret_id = var.system_password_secret_id
  labels    = merge(var.labels, { "nats-identity" = "system" })

  replication {
    user_managed {
      dynamic "replicas" {
        for_each = var.replica_locations
        content {
          location = replicas.value
        }
      }
    }
  }
}

resource "google_secret_manager_secret_iam_member" "ca" {
  for_each = var.identities

  project   = var.project_id
  secret_id = google_secret_manager_secret.ca.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.service_account}"
}
