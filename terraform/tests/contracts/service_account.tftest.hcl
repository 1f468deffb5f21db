# Contract of modules/service_account/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id    = "fjordbank-test"
  account_id    = "fjb-edge"
  display_name  = "Fjordbank edge"
  project_roles = ["roles/datastore.user"]
}

run "accepts_predefined_roles" {
  command = plan
}

run "refuses_the_editor_role" {
  command = plan
  variables {
    project_roles = ["roles/datastore.user", "roles/editor"]
  }
  expect_failures = [var.project_roles]
}

run "refuses_an_account_id_too_long" {
  command = plan
  variables {
    account_id = "fjordbank-edge-functions-runtime"
  }
  expect_failures = [var.account_id]
}
