# Contract of modules/consumer/variables.tf, run provider-free by
# tests/deploy/test_terraform_contracts.py on a copy of that file alone.

variables {
  project_id            = "fjordbank-test"
  name                  = "ledger"
  region                = "europe-north1"
  image                 = "registry.example/fjordbank/services@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  network_id            = "projects/fjordbank-test/global/networks/fjordbank"
  subnetwork_id         = "projects/fjordbank-test/regions/europe-north1/subnetworks/fjordbank-run-egress"
  nats_urls             = ["tls://10.20.0.10:4222"]
  service_account_email = "fjb-ledger@fjordbank-test.iam.gserviceaccount.com"
  nats_secrets = {
    password = "nats-ledger-password"
    tls_cert = "nats-ledger-tls-cert"
    tls_key  = "nats-ledger-tls-key"
    ca       = "nats-ca-cert"
  }
}

run "accepts_a_digest_pinned_image_with_one_instance" {
  command = plan
}

run "accepts_more_instances_and_plain_configuration" {
  command = plan
  variables {
    min_instances = 2
    max_instances = 10
    env           = { FJB_BANK_REGS = "9710" }
    secret_env    = { FJB_VAULT_KEY = "cards-vault-key" }
  }
}

run "accepts_the_clearing_exchange_mounted" {
  command = plan
  variables {
    name            = "clearing"
    env             = { FJB_CLEARING_DIR = "/mnt/clearing" }
    storage_volumes = { clearing = { bucket = "fjordbank-test-clearing", mount_path = "/mnt/clearing" } }
  }
}

run "accepts_the_card_vault_s_database_and_the_card_api_on_the_http_port" {
  command = plan
  variables {
    name            = "cards"
    env             = { FJB_VAULT_DATABASE = "card-vault" }
    serves_card_api = true
  }
}

run "refuses_setting_the_card_api_port_apart_from_the_http_port" {
  command = plan
  variables {
    env = { FJB_CARD_API_PORT = "9090" }
  }
  expect_failures = [var.env]
}

run "refuses_a_mount_over_the_nats_files" {
  command = plan
  variables {
    storage_volumes = { clearing = { bucket = "fjordbank-test-clearing", mount_path = "/var/run/secrets/nats" } }
  }
  expect_failures = [var.storage_volumes]
}

run "refuses_a_mount_over_the_image" {
  command = plan
  variables {
    storage_volumes = { clearing = { bucket = "fjordbank-test-clearing", mount_path = "/app" } }
  }
  expect_failures = [var.storage_volumes]
}

run "refuses_a_relative_mount_path" {
  command = plan
  variables {
    storage_volumes = { clearing = { bucket = "fjordbank-test-clearing", mount_path = "mnt/clearing" } }
  }
  expect_failures = [var.storage_volumes]
}

run "refuses_a_volume_named_like_the_modules_own" {
  command = plan
  variables {
    storage_volumes = { nats-ca = { bucket = "fjordbank-test-clearing", mount_path = "/mnt/clearing" } }
  }
  expect_failures = [var.storage_volumes]
}

run "refuses_a_tag_only_image" {
  command = plan
  variables {
    image = "registry.example/fjordbank/services:v1"
  }
  expect_failures = [var.image]
}

run "refuses_latest" {
  command = plan
  variables {
    image = "registry.example/fjordbank/services:latest"
  }
  expect_failures = [var.image]
}

run "accepts_the_prometheus_sidecar_by_digest" {
  command = plan
  variables {
    prometheus_sidecar_image = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  }
}

run "refuses_the_prometheus_sidecar_at_latest" {
  command = plan
  variables {
    prometheus_sidecar_image = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:latest"
  }
  expect_failures = [var.prometheus_sidecar_image]
}

run "refuses_another_prometheus_sidecar" {
  command = plan
  variables {
    prometheus_sidecar_image = "registry.example/collector:1.2.0"
  }
  expect_failures = [var.prometheus_sidecar_image]
}

run "refuses_a_short_digest" {
  command = plan
  variables {
    image = "registry.example/fjordbank/services@sha256:abc123"
  }
  expect_failures = [var.image]
}

run "refuses_zero_instances" {
  command = plan
  variables {
    min_instances = 0
  }
  expect_failures = [var.min_instances]
}

run "refuses_a_region_outside_the_eea" {
  command = plan
  variables {
    region = "us-central1"
  }
  expect_failures = [var.region]
}

run "refuses_london" {
  command = plan
  variables {
    region = "europe-west2"
  }
  expect_failures = [var.region]
}

run "refuses_nats_without_tls" {
  command = plan
  variables {
    nats_urls = ["nats://10.20.0.10:4222"]
  }
  expect_failures = [var.nats_urls]
}

run "refuses_a_secret_in_plain_env" {
  command = plan
  variables {
    env = { FJB_VAULT_KEY = "c2VjcmV0" }
  }
  expect_failures = [var.env]
}

run "refuses_overriding_the_nats_user" {
  command = plan
  variables {
    env = { FJB_NATS_USER = "admin" }
  }
  expect_failures = [var.env]
}

run "refuses_the_default_compute_service_account" {
  command = plan
  variables {
    service_account_email = "123456789012-compute@developer.gserviceaccount.com"
  }
  expect_failures = [var.service_account_email]
}

run "refuses_a_startup_budget_shorter_than_direct_vpc_egress_needs" {
  command = plan
  variables {
    startup_probe = { period_seconds = 5, timeout_seconds = 3, failure_threshold = 3 }
  }
  expect_failures = [var.startup_probe]
}
