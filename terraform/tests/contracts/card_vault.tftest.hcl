# Contract of modules/card_vault/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id        = "fjordbank-test"
  name              = "fjordbank-card-vault"
  location          = "europe-north1-a"
  network_name      = "fjordbank"
  reserved_ip_range = "10.20.14.0/29"
  client_ranges     = ["10.20.12.0/24"]
}

run "accepts_a_basic_hdd_share_in_an_eea_zone_for_the_egress_range" {
  command = plan
}

run "accepts_a_larger_basic_ssd_share" {
  command = plan
  variables {
    tier        = "BASIC_SSD"
    capacity_gb = 2560
  }
}

run "refuses_a_zone_outside_the_eea" {
  command = plan
  variables {
    location = "us-central1-a"
  }
  expect_failures = [var.location]
}

run "refuses_a_zone_in_zurich" {
  command = plan
  variables {
    location = "europe-west6-a"
  }
  expect_failures = [var.location]
}

run "refuses_a_share_below_the_basic_minimum" {
  command = plan
  variables {
    capacity_gb = 100
  }
  expect_failures = [var.capacity_gb]
}

run "refuses_a_tier_this_module_does_not_wire" {
  command = plan
  variables {
    tier = "ENTERPRISE"
  }
  expect_failures = [var.tier]
}

run "refuses_a_reserved_range_that_is_not_a_29" {
  command = plan
  variables {
    reserved_ip_range = "10.20.14.0/24"
  }
  expect_failures = [var.reserved_ip_range]
}

run "refuses_the_whole_internet_as_clients" {
  command = plan
  variables {
    client_ranges = ["0.0.0.0/0"]
  }
  expect_failures = [var.client_ranges]
}

run "refuses_no_clients" {
  command = plan
  variables {
    client_ranges = []
  }
  expect_failures = [var.client_ranges]
}
