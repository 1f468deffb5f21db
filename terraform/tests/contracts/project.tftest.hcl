# Contract of modules/project/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id = "fjordbank-test"
}

run "accepts_a_project_id_and_the_default_apis" {
  command = plan
}

run "refuses_an_invalid_project_id" {
  command = plan
  variables {
    project_id = "Fjordbank_Prod"
  }
  expect_failures = [var.project_id]
}

run "refuses_an_api_that_is_no_service_name" {
  command = plan
  variables {
    services = ["run"]
  }
  expect_failures = [var.services]
}
