# Contract of modules/secrets/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id        = "fjordbank-test"
  replica_locations = ["europe-north1", "europe-west1"]
  identities = {
    ledger = {
      service_account = "fjb-ledger@fjordbank-test.iam.gserviceaccount.com"
      secrets = {
        password = "nats-ledger-password"
        tls_cert = "nats-ledger-tls-cert"
        tls_key  = "nats-ledger-tls-key"
      }
    }
  }
}

run "accepts_an_identity_with_its_three_secrets" {
  command = plan
}

run "refuses_replicas_outside_the_eea" {
  command = plan
  variables {
    replica_locations = ["europe-north1", "us-east1"]
  }
  expect_failures = [var.replica_locations]
}

run "refuses_an_identity_without_a_password" {
  command = plan
  variables {
    identities = {
      ledger = {
        service_account = "fjb-ledger@fjordbank-test.iam.gserviceaccount.com"
        secrets         = { tls_cert = "nats-ledger-tls-cert", tls_key = "nats-ledger-tls-key" }
      }
    }
  }
  expect_failures = [var.identities]
}

run "refuses_an_invalid_secret_id" {
  command = plan
  variables {
    identities = {
      ledger = {
        service_account = "fjb-ledger@fjordbank-test.iam.gserviceaccount.com"
        secrets         = { password = "nats/ledger/password", tls_cert = "c", tls_key = "k" }
      }
    }
  }
  expect_failures = [var.identities]
}

run "refuses_an_invalid_system_password_secret_id" {
  command = plan
  variables {
    system_password_secret_id = "nats/system/password"
  }
  expect_failures = [var.system_password_secret_id]
}
