# The bank's VPC: GKE (NATS) and the Cloud Run consumers in `region`, the functions'
# Serverless VPC Access connector in `functions_region`. Every subnet has Private Google
# Access, so Firestore, Pub/Sub and Secret Manager are reached without public addresses.
resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = var.name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL" # subnet routes are global in a VPC; no dynamic routes to share
}

resource "google_compute_subnetwork" "gke" {
  project                  = var.project_id
  name                     = "${var.name}-gke"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.gke_nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.gke_pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.gke_services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Cloud Run Direct VPC egress: the consumers' instances take their addresses from here.
resource "google_compute_subnetwork" "run_egress" {
  project                  = var.project_id
  name                     = "${var.name}-run-egress"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.run_egress_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# The functions' connector subnet (/28), in the functions' region.
resource "google_compute_subnetwork" "connector" {
  project                  = var.project_id
  name                     = "${var.name}-connector"
  region                   = var.functions_region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.connector_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "functions" {
  project       = var.project_id
  name          = "${var.name}-functions"
  region        = var.functions_region
  machine_type  = var.connector_machine_type
  min_instances = var.connector_instances.min
  max_instances = var.connector_instances.max

  subnet {
    name       = google_compute_subnetwork.connector.name
    project_id = var.project_id
  }
}

# Outbound internet for the private GKE nodes (pulling the NATS images); the consumers use
# PRIVATE_RANGES_ONLY egress and the functions keep their own internet path.
resource "google_compute_router" "this" {
  project = var.project_id
  name    = "${var.name}-router"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  project                            = var.project_id
  name                               = "${var.name}-nat"
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.gke.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# NATS's client port, from the consumers' egress range and the functions' connector range
# only. The internal passthrough load balancer keeps the client's address, so this rule is
# what admits them at the NATS nodes (the Service's loadBalancerSourceRanges say the same).
resource "google_compute_firewall" "nats_clients" {
  project       = var.project_id
  name          = "${var.name}-allow-nats-clients"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [var.run_egress_cidr, var.connector_cidr]
  target_tags   = [var.nats_node_tag]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.nats_client_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The monitoring port is never reachable from the network, whatever another rule allows
# (the exporter sidecar reads it over the pod's loopback).
resource "google_compute_firewall" "nats_monitoring_deny" {
  project       = var.project_id
  name          = "${var.name}-deny-nats-monitoring"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 900
  source_ranges = ["0.0.0.0/0"]
  target_tags   = [var.nats_node_tag]

  deny {
    protocol = "tcp"
    ports    = ["8222"]
  }
}
