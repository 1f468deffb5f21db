# Contract of modules/firestore/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id  = "fjordbank-test"
  location_id = "eur3"
}

run "accepts_the_eur3_multi_region" {
  command = plan
}

run "accepts_an_eea_region" {
  command = plan
  variables {
    location_id = "europe-north1"
  }
}

run "refuses_the_us_multi_region" {
  command = plan
  variables {
    location_id = "nam5"
  }
  expect_failures = [var.location_id]
}

run "refuses_zurich" {
  command = plan
  variables {
    location_id = "europe-west6"
  }
  expect_failures = [var.location_id]
}

run "refuses_a_daily_backup_kept_longer_than_seven_days" {
  command = plan
  variables {
    daily_backup_retention = "1209600s"
  }
  expect_failures = [var.daily_backup_retention]
}
