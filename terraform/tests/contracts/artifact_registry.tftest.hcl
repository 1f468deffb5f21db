# Contract of modules/artifact_registry/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id = "fjordbank-test"
  location   = "europe-north1"
}

run "accepts_an_eea_region" {
  command = plan
}

run "refuses_a_location_outside_the_eea" {
  command = plan
  variables {
    location = "us"
  }
  expect_failures = [var.location]
}

run "refuses_keeping_almost_nothing" {
  command = plan
  variables {
    keep_recent = 1
  }
  expect_failures = [var.keep_recent]
}
