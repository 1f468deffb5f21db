# Contract of modules/nats_lb/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id            = "fjordbank-test"
  region                = "europe-north1"
  subnetwork_id         = "projects/fjordbank-test/regions/europe-north1/subnetworks/fjordbank-gke"
  allowed_source_ranges = ["10.20.12.0/24", "10.20.13.0/28"]
}

run "accepts_the_egress_and_connector_ranges" {
  command = plan
}

run "accepts_a_fixed_address" {
  command = plan
  variables {
    address = "10.20.0.10"
  }
}

run "refuses_clients_from_anywhere" {
  command = plan
  variables {
    allowed_source_ranges = ["0.0.0.0/0"]
  }
  expect_failures = [var.allowed_source_ranges]
}

run "refuses_no_client_range" {
  command = plan
  variables {
    allowed_source_ranges = []
  }
  expect_failures = [var.allowed_source_ranges]
}

run "refuses_a_region_outside_the_eea" {
  command = plan
  variables {
    region = "asia-northeast1"
  }
  expect_failures = [var.region]
}

run "refuses_an_address_that_is_no_ipv4_address" {
  command = plan
  variables {
    address = "10.20.0.300"
  }
  expect_failures = [var.address]
}
