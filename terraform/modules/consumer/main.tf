# One consumer service (run_services/NAME.py) on Cloud Run: a pull consumer of NATS
# JetStream. Cloud Run scales on requests, and a pull consumer gets none, so it keeps
# min_instances >= 1 with CPU always allocated (cpu_idle = false, instance-based billing):
# under request-based billing the CPU is throttled between requests and the pull loop and
# NATS heartbeats stall. Its HTTP port serves /healthz, /readyz and /metrics, and for the
# card service (serves_card_api) the card processor's API too: a container has one port,
# so FJB_CARD_API_PORT is FJB_HTTP_PORT (fjordbank/runtime/http.py).
#
# It runs as its own service account (fjb-NAME, made by the service_account module so that
# the secrets module can grant it its secrets before the first revision starts).
#
# State that must outlive an instance lives outside it: in Firestore (the card service's
# vault too, a database of its own: modules/card_vault, FJB_VAULT_DATABASE through env), or
# on a Cloud Storage bucket mounted into it (storage_volumes), the clearing service's file
# exchange with the clearing house.
#
# Shutdown: Cloud Run sends SIGTERM and kills 10 s later (not configurable). The consumer
# runtime (fjordbank/runtime/consumer.py) stops fetching, gives its partitions up as each
# one's work stops, finishes the batch in hand, flushes its acks and closes; an idle one
# within that budget, a busy one not always (its budget is up to the handler deadline, as
# on Knative, k8s/render.py REVISION_TIMEOUT_SECONDS): what a kill cuts off is delivered
# again (each consumer answers a redelivery from its records) and its leases expire (3 s).
#
# Metrics: Cloud Run scrapes nothing. The Managed Service for Prometheus sidecar
# (Google's collector for Cloud Run) scrapes the service's /metrics and writes them to
# Managed Prometheus, where the GlobalRules of k8s/monitoring evaluate monitoring/rules.
# Its RunMonitoring configuration, a file it reads at /etc/rungmp/config.yaml (mounted from
# Secret Manager, the documented way), names the scrape job after the service: the rules
# expect job="NAME" (monitoring/metrics.yaml scrape_jobs). With the default configuration
# every series would carry job="run-gmp-sidecar", and FjbServiceDown, which fires when no
# up{job="NAME"} is 1, would page for every service for ever.
locals {
  port       = 8080
  nats_files = "/var/run/secrets/nats"

  run_monitoring = {
    apiVersion = "monitoring.googleapis.com/v1beta"
    kind       = "RunMonitoring"
    metadata   = { name = var.name }
    spec = {
      endpoints = [{ port = tostring(local.port), path = "/metrics", interval = "30s" }]
    }
  }
}

# The sidecar's configuration is not secret; Secret Manager is only how Cloud Run mounts a
# file. So, unlike the NATS secrets (modules/secrets), its one version is Terraform's.
resource "google_secret_manager_secret" "run_monitoring" {
  project   = var.project_id
  secret_id = "${var.name}-run-monitoring"
  labels    = merge(var.labels, { "fjordbank-service" = var.name })

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "run_monitoring" {
  secret      = google_secret_manager_secret.run_monitoring.id
  secret_data = yamlencode(local.run_monitoring)
}

resource "google_secret_manager_secret_iam_member" "run_monitoring" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.run_monitoring.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${var.service_account_email}"
}

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  description         = "Fjordbank ${var.name}: NATS JetStream pull consumer."
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection
  labels              = merge(var.labels, { "fjordbank-service" = var.name })
  # The card processor signs its requests with the shared secret (FJB_CARD_PROCESSOR_SECRET),
  # not with a Google identity: Cloud Run's own IAM check answered every one 403 before the
  # service saw it. The signature is the authentication, and the ingress stays internal:
  # the processor reaches the service over the bank's private connection (VPN or
  # interconnect into the VPC), which is the operator's to provide (found in review).
  invoker_iam_disabled = var.serves_card_api

  template {
    service_account                  = var.service_account_email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.max_concurrency
    labels                           = merge(var.labels, { "fjordbank-service" = var.name })

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"

      network_interfaces {
        network    = var.network_id
        subnetwork = var.subnetwork_id
        tags       = var.network_tags
      }
    }

    containers {
      name  = var.name
      image = var.image

      ports {
        container_port = local.port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      env {
        name  = "SERVICE"
        value = var.name
      }
      env {
        name  = "FJB_NATS_USER"
        value = var.name
      }
      env {
        name  = "FJB_NATS_URLS"
        value = join(",", var.nats_urls)
      }
      env {
        name  = "FJB_PROJECT_ID"
        value = var.project_id
      }
      env {
        name  = "FJB_HTTP_PORT"
        value = tostring(local.port)
      }
      env {
        name  = "FJB_HTTP_HOST" # probes and scrapes come from outside the container
        value = "0.0.0.0"
      }
      # the card processor's API on the service's one port (run_services/cards.py serves it
      # beside the probes when FJB_CARD_API_PORT equals FJB_HTTP_PORT)
      dynamic "env" {
        for_each = var.serves_card_api ? [tostring(local.port)] : []
        content {
          name  = "FJB_CARD_API_PORT"
          value = env.value
        }
      }
      env {
        name  = "FJB_NATS_CA"
        value = "${local.nats_files}/ca/ca.pem"
      }
      env {
        name  = "FJB_NATS_CERT"
        value = "${local.nats_files}/cert/client.pem"
      }
      env {
        name  = "FJB_NATS_KEY"
        value = "${local.nats_files}/key/client-key.pem"
      }
      env {
        name = "FJB_NATS_PASSWORD"
        value_source {
          secret_key_ref {
            secret  = var.nats_secrets.password
            version = "latest"
          }
        }
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "nats-ca"
        mount_path = "${local.nats_files}/ca"
      }
      volume_mounts {
        name       = "nats-cert"
        mount_path = "${local.nats_files}/cert"
      }
      volume_mounts {
        name       = "nats-key"
        mount_path = "${local.nats_files}/key"
      }

      dynamic "volume_mounts" {
        for_each = var.storage_volumes
        content {
          name       = volume_mounts.key
          mount_path = volume_mounts.value.mount_path
        }
      }

      # ready = connected to NATS: a revision whose egress cannot reach NATS never takes over
      startup_probe {
        period_seconds    = var.startup_probe.period_seconds
        timeout_seconds   = var.startup_probe.timeout_seconds
        failure_threshold = var.startup_probe.failure_threshold

        http_get {
          path = "/readyz"
          port = local.port
        }
      }

      liveness_probe {
        period_seconds    = 10
        timeout_seconds   = 3
        failure_threshold = 3

        http_get {
          path = "/healthz"
          port = local.port
        }
      }
    }

    # The Managed Service for Prometheus sidecar: scrapes 127.0.0.1:8080/metrics every 30 s
    # as job NAME (local.run_monitoring) and writes to Managed Prometheus as this service's
    # account (roles/monitoring.metricWriter, envs' consumer_roles). It starts once the
    # service is up (depends_on: after its startup probe). CPU stays allocated for it as for
    # the service; Cloud Run allows less than 1 vCPU only with request-based billing.
    containers {
      name       = "prometheus-sidecar"
      image      = var.prometheus_sidecar_image
      depends_on = [var.name]

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = false
      }

      volume_mounts {
        name       = "run-gmp-config"
        mount_path = "/etc/rungmp"
      }
    }

    volumes {
      name = "nats-ca"
      secret {
        secret = var.nats_secrets.ca
        items {
          path    = "ca.pem"
          version = "latest"
        }
      }
    }
    volumes {
      name = "nats-cert"
      secret {
        secret = var.nats_secrets.tls_cert
        items {
          path    = "client.pem"
          version = "latest"
        }
      }
    }
    # Cloud Run mounts secret files owned by root, and the image runs as its own user
    # (run_services/Dockerfile, USER 10001): 0400 left the key readable by root alone, and
    # the service could not load it. Cloud Run has no fsGroup to hand the files to the
    # image's group, so the key is 0444 like the other two: readable by every user of the
    # container, and the container has one user. (The Knative path does better, 0440 and
    # fsGroup: k8s/render.py.) tests/deploy/test_secret_file_modes.py holds both.
    volumes {
      name = "nats-key"
      secret {
        secret = var.nats_secrets.tls_key
        items {
          path    = "client-key.pem"
          version = "latest"
          mode    = 292 # 0444
        }
      }
    }
    volumes {
      name = "run-gmp-config"
      secret {
        secret = google_secret_manager_secret.run_monitoring.secret_id
        items {
          path    = "config.yaml"
          version = google_secret_manager_secret_version.run_monitoring.version
          mode    = 292 # 0444, root-owned: read by the sidecar's own user
        }
      }
    }

    # Cloud Storage buckets mounted with Cloud Storage FUSE (gen2 execution environment):
    # the clearing service's file exchange with the clearing house (FJB_CLEARING_DIR).
    dynamic "volumes" {
      for_each = var.storage_volumes
      content {
        name = volumes.key
        gcs {
          bucket    = volumes.value.bucket
          read_only = volumes.value.read_only
        }
      }
    }
  }

  # a revision that mounts a secret its account cannot read never starts
  depends_on = [google_secret_manager_secret_iam_member.run_monitoring]
}
