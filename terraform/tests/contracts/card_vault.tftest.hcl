# Contract of modules/card_vault/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id  = "fjordbank-test"
  location_id = "eur3"
  users       = { cards = "fjb-cards@fjordbank-test.iam.gserviceaccount.com" }
}

run "accepts_the_vault_beside_the_ledger_in_eur3_for_the_card_service" {
  command = plan
}

run "accepts_an_eea_region_and_another_name" {
  command = plan
  variables {
    location_id = "europe-north1"
    database_id = "card-vault-2"
  }
}

run "refuses_the_default_database" {
  command = plan
  variables {
    database_id = "(default)"
  }
  expect_failures = [var.database_id]
}

run "refuses_a_database_id_too_short" {
  command = plan
  variables {
    database_id = "pan"
  }
  expect_failures = [var.database_id]
}

run "refuses_a_location_in_the_us" {
  command = plan
  variables {
    location_id = "nam5"
  }
  expect_failures = [var.location_id]
}

run "refuses_a_location_in_zurich" {
  command = plan
  variables {
    location_id = "europe-west6"
  }
  expect_failures = [var.location_id]
}

run "refuses_no_user" {
  command = plan
  variables {
    users = {}
  }
  expect_failures = [var.users]
}

run "refuses_the_default_compute_account" {
  command = plan
  variables {
    users = { cards = "123456789012-compute@developer.gserviceaccount.com" }
  }
  expect_failures = [var.users]
}

run "refuses_daily_backups_kept_longer_than_a_week" {
  command = plan
  variables {
    daily_backup_retention = "1209600s"
  }
  expect_failures = [var.daily_backup_retention]
}
