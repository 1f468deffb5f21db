# Contract of modules/clearing_exchange/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id = "fjordbank-test"
  name       = "fjordbank-test-clearing"
  location   = "europe-north1"
  exchangers = {
    clearing = "fjb-clearing@fjordbank-test.iam.gserviceaccount.com"
    transfer = "fjb-clearing-transfer@fjordbank-test.iam.gserviceaccount.com"
  }
}

run "accepts_an_eea_bucket_for_the_clearing_service_and_the_transfer_service" {
  command = plan
}

run "refuses_a_location_outside_the_eea" {
  command = plan
  variables {
    location = "us-central1"
  }
  expect_failures = [var.location]
}

run "refuses_zurich" {
  command = plan
  variables {
    location = "europe-west6"
  }
  expect_failures = [var.location]
}

run "refuses_a_bucket_name_google_reserves" {
  command = plan
  variables {
    name = "google-clearing"
  }
  expect_failures = [var.name]
}

run "refuses_an_upper_case_bucket_name" {
  command = plan
  variables {
    name = "Fjordbank-Clearing"
  }
  expect_failures = [var.name]
}

run "refuses_the_default_compute_account" {
  command = plan
  variables {
    exchangers = { clearing = "123456789-compute@developer.gserviceaccount.com" }
  }
  expect_failures = [var.exchangers]
}

run "accepts_the_clearing_service_as_the_sanctions_lists_reader" {
  command = plan
  variables {
    list_readers = { clearing = "fjb-clearing@fjordbank-test.iam.gserviceaccount.com" }
  }
}

run "refuses_a_default_account_as_the_sanctions_lists_reader" {
  command = plan
  variables {
    list_readers = { clearing = "123456789-compute@developer.gserviceaccount.com" }
  }
  expect_failures = [var.list_readers]
}

run "refuses_keeping_old_versions_less_than_a_week" {
  command = plan
  variables {
    noncurrent_days = 1
  }
  expect_failures = [var.noncurrent_days]
}
