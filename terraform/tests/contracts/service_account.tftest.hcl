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

run "accepts_a_role_conditioned_to_one_firestore_database" {
  command = plan
  variables {
    project_role_conditions = {
      "roles/datastore.user" = {
        title      = "firestore-default-database-only"
        expression = "resource.name == \"projects/fjordbank-test/databases/(default)\""
      }
    }
  }
}

run "refuses_a_condition_without_an_expression" {
  command = plan
  variables {
    project_role_conditions = {
      "roles/datastore.user" = { title = "firestore-default-database-only", expression = " " }
    }
  }
  expect_failures = [var.project_role_conditions]
}

run "refuses_a_condition_on_something_that_is_no_role" {
  command = plan
  variables {
    project_role_conditions = {
      "datastore.user" = { title = "x", expression = "true" }
    }
  }
  expect_failures = [var.project_role_conditions]
}
