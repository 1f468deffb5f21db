# Contract of envs/{dev,prod}/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py
# runs it against each environment's variables.tf).

variables {
  project_id = "fjordbank-test"
  master_authorized_networks = [
    { cidr_block = "10.200.0.0/24", display_name = "bastion" },
  ]
  images = {
    ledger = "registry.example/fjordbank/services@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  }
}

run "accepts_the_defaults_and_a_digest" {
  command = plan
}

run "refuses_a_tag_only_image" {
  command = plan
  variables {
    images = { ledger = "registry.example/fjordbank/services:1.4.2" }
  }
  expect_failures = [var.images]
}

run "refuses_a_consumer_at_zero_instances" {
  command = plan
  variables {
    min_instances = { ledger = 0 }
  }
  expect_failures = [var.min_instances]
}

# cards keeps the processor's references in flight and the approvals had in its process
# (run_services/cards.py References, Delivered); its vault no longer limits it (Firestore)
run "refuses_a_second_instance_of_a_service_with_local_state" {
  command = plan
  variables {
    max_instances = { cards = 2 }
  }
  expect_failures = [var.max_instances]
}

run "refuses_a_second_clearing_instance" {
  command = plan
  variables {
    max_instances = { clearing = 2 }
  }
  expect_failures = [var.max_instances]
}

run "accepts_more_instances_of_a_stateless_service" {
  command = plan
  variables {
    max_instances = { ledger = 6, clearing = 1 }
  }
}

run "refuses_a_bank_reg_that_is_not_four_digits" {
  command = plan
  variables {
    bank_regs = "971"
  }
  expect_failures = [var.bank_regs]
}

run "refuses_a_region_outside_the_eea" {
  command = plan
  variables {
    region = "us-central1"
  }
  expect_failures = [var.region]
}

run "refuses_functions_outside_the_eea" {
  command = plan
  variables {
    functions_region = "us-east1"
  }
  expect_failures = [var.functions_region]
}

run "refuses_firestore_in_the_us" {
  command = plan
  variables {
    firestore_location = "nam5"
  }
  expect_failures = [var.firestore_location]
}

run "refuses_a_secret_in_service_env" {
  command = plan
  variables {
    service_env = { cards = { FJB_CARD_PROCESSOR_SECRET = "s3cret" } }
  }
  expect_failures = [var.service_env]
}

run "refuses_the_clearing_dir_in_service_env" {
  command = plan
  variables {
    service_env = { clearing = { FJB_CLEARING_DIR = "/tmp/clearing" } }
  }
  expect_failures = [var.service_env]
}

run "refuses_the_vault_database_in_service_env" {
  command = plan
  variables {
    service_env = { cards = { FJB_VAULT_DATABASE = "(default)" } }
  }
  expect_failures = [var.service_env]
}

run "accepts_an_address_plan_without_a_filestore_range" {
  command = plan
  variables {
    cidrs = {
      gke_nodes    = "10.30.0.0/22"
      gke_pods     = "10.32.0.0/16"
      gke_services = "10.30.8.0/22"
      gke_master   = "172.16.30.0/28"
      run_egress   = "10.30.12.0/24"
      connector    = "10.30.13.0/28"
    }
  }
}

run "refuses_a_card_api_port_in_service_env" {
  command = plan
  variables {
    service_env = { cards = { FJB_CARD_API_PORT = "9090" } }
  }
  expect_failures = [var.service_env]
}
