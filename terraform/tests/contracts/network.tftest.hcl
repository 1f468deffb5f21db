# Contract of modules/network/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id        = "fjordbank-test"
  name              = "fjordbank"
  region            = "europe-north1"
  functions_region  = "europe-west1"
  gke_nodes_cidr    = "10.20.0.0/22"
  gke_pods_cidr     = "10.24.0.0/14"
  gke_services_cidr = "10.20.8.0/22"
  run_egress_cidr   = "10.20.12.0/24"
  connector_cidr    = "10.20.13.0/28"
}

run "accepts_the_production_plan" {
  command = plan
}

run "refuses_a_region_outside_the_eea" {
  command = plan
  variables {
    region = "us-central1"
  }
  expect_failures = [var.region]
}

run "refuses_functions_in_zurich" {
  command = plan
  variables {
    functions_region = "europe-west6"
  }
  expect_failures = [var.functions_region]
}

run "refuses_a_connector_range_other_than_a_28" {
  command = plan
  variables {
    connector_cidr = "10.20.13.0/27"
  }
  expect_failures = [var.connector_cidr]
}

run "refuses_an_egress_range_smaller_than_a_26" {
  command = plan
  variables {
    run_egress_cidr = "10.20.12.0/27"
  }
  expect_failures = [var.run_egress_cidr]
}

run "refuses_opening_the_monitoring_port" {
  command = plan
  variables {
    nats_client_port = 8222
  }
  expect_failures = [var.nats_client_port]
}

run "refuses_a_name_too_long_for_the_connector" {
  command = plan
  variables {
    name = "fjordbank-production"
  }
  expect_failures = [var.name]
}
