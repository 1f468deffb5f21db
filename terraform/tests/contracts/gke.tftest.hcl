# Contract of modules/gke/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id          = "fjordbank-test"
  name                = "fjordbank-prod"
  region              = "europe-north1"
  zones               = ["europe-north1-a", "europe-north1-b", "europe-north1-c"]
  network_id          = "projects/fjordbank-test/global/networks/fjordbank"
  subnetwork_id       = "projects/fjordbank-test/regions/europe-north1/subnetworks/fjordbank-gke"
  pods_range_name     = "pods"
  services_range_name = "services"
  master_ipv4_cidr    = "172.16.20.0/28"
  nats_node_tag       = "fjb-nats"
  master_authorized_networks = [
    { cidr_block = "10.200.0.0/24", display_name = "bastion" },
  ]
}

run "accepts_three_zones_of_an_eea_region" {
  command = plan
}

run "refuses_a_region_outside_the_eea" {
  command = plan
  variables {
    region = "us-central1"
  }
  expect_failures = [var.region]
}

run "refuses_two_zones" {
  command = plan
  variables {
    zones = ["europe-north1-a", "europe-north1-b"]
  }
  expect_failures = [var.zones]
}

run "refuses_zones_outside_the_eea" {
  command = plan
  variables {
    zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
  }
  expect_failures = [var.zones]
}

run "refuses_a_control_plane_open_to_the_internet" {
  command = plan
  variables {
    master_authorized_networks = [{ cidr_block = "0.0.0.0/0", display_name = "everyone" }]
  }
  expect_failures = [var.master_authorized_networks]
}

run "refuses_an_unknown_release_channel" {
  command = plan
  variables {
    release_channel = "UNSPECIFIED"
  }
  expect_failures = [var.release_channel]
}

run "refuses_a_maintenance_window_that_ends_before_it_starts" {
  command = plan
  variables {
    maintenance_window = {
      start_time = "2025-01-04T05:00:00Z"
      end_time   = "2025-01-04T01:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA"
    }
  }
  expect_failures = [var.maintenance_window]
}
