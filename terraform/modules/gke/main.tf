# A private regional GKE cluster for NATS JetStream (after terraform-google-modules/
# kubernetes-engine's private-cluster): Workload Identity, a release channel with a
# maintenance window, shielded nodes, Dataplane V2 (which enforces NetworkPolicy itself),
# Google Cloud Managed Service for Prometheus, and a dedicated NATS node pool with one node
# in each of three zones, tainted so only NATS runs there. In-cluster objects (the NATS
# chart, its internal load balancer Service, PodMonitoring) are Helm's and kubectl's.

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name}"
  description  = "Runs the nodes only (logs, metrics, image pulls); workloads use Workload Identity."
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/artifactregistry.reader",
    "roles/autoscaling.metricsWriter",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "this" {
  # checkov:skip=CKV_GCP_12:Dataplane V2 (datapath_provider ADVANCED_DATAPATH) enforces NetworkPolicy itself; the network_policy block must stay unset with it (the API refuses both).
  # checkov:skip=CKV_GCP_65:No human RBAC users: operators reach the cluster through IAM roles (container.developer/viewer) and workloads through Workload Identity; Google Groups for RBAC needs a Workspace domain this module cannot assume.
  project        = var.project_id
  name           = var.name
  location       = var.region
  node_locations = var.zones

  network         = var.network_id
  subnetwork      = var.subnetwork_id
  networking_mode = "VPC_NATIVE"

  # the node pools below replace the default pool
  remove_default_node_pool = true
  initial_node_count       = 1

  deletion_protection         = var.deletion_protection
  datapath_provider           = "ADVANCED_DATAPATH"
  enable_shielded_nodes       = true
  enable_l4_ilb_subsetting    = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true
  resource_labels             = var.labels

  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = true
    master_ipv4_cidr_block  = var.master_ipv4_cidr

    master_global_access_config {
      enabled = true
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  # Binary Authorization evaluates every pod's image against the project's singleton policy
  # (its default admits everything; the team tightens it to the attestations of the images
  # the pipeline signs once NATS's and its exporter's images are attested or exempted).
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  release_channel {
    channel = var.release_channel
  }

  maintenance_policy {
    recurring_window {
      start_time = var.maintenance_window.start_time
      end_time   = var.maintenance_window.end_time
      recurrence = var.maintenance_window.recurrence
    }
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]

    managed_prometheus {
      enabled = true
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  addons_config {
    http_load_balancing {
      disabled = false
    }

    horizontal_pod_autoscaling {
      disabled = false
    }

    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
  }

  security_posture_config {
    mode               = "BASIC"
    vulnerability_mode = "VULNERABILITY_BASIC"
  }

  # the short-lived default pool, before remove_default_node_pool deletes it
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  lifecycle {
    ignore_changes = [node_config, initial_node_count]
  }
}

# General pool: kube-system, cert-manager, the NATS admin job.
resource "google_container_node_pool" "system" {
  project        = var.project_id
  name           = "system"
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = var.zones

  autoscaling {
    min_node_count = var.system_nodes_per_zone.min
    max_node_count = var.system_nodes_per_zone.max
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.system_machine_type
    disk_type       = "pd-balanced"
    disk_size_gb    = 50
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = merge(var.labels, { "fjordbank-pool" = "system" })

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# NATS: one node per zone (node_count is per zone in a regional pool), no autoscaling (the
# StatefulSet has 3 replicas, spread over zones), surge upgrades one node at a time so the
# PodDisruptionBudget (maxUnavailable 1) keeps the JetStream quorum.
resource "google_container_node_pool" "nats" {
  project        = var.project_id
  name           = "nats"
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = var.zones
  node_count     = 1

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.nats_machine_type
    disk_type       = "pd-ssd"
    disk_size_gb    = var.nats_disk_size_gb
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    tags            = [var.nats_node_tag]
    labels          = merge(var.labels, { "fjordbank-pool" = "nats" })

    taint {
      key    = "fjordbank-pool"
      value  = "nats"
      effect = "NO_SCHEDULE"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
