# Contract of modules/pubsub_scheduler/variables.tf (provider-free; tests/deploy/test_terraform_contracts.py).

variables {
  project_id          = "fjordbank-test"
  push_topic          = "push-notifications"
  jobs_topic          = "scheduled-jobs"
  scheduler_region    = "europe-west1"
  persistence_regions = ["europe-north1", "europe-west1"]
  jobs = {
    "relay-outbox" = { schedule = "*/5 * * * *", description = "Publishes events whose first publish failed." }
  }
}

run "accepts_jobs_in_oslo_time_stored_in_the_eea" {
  command = plan
}

run "refuses_a_scheduler_outside_the_eea" {
  command = plan
  variables {
    scheduler_region = "us-central1"
  }
  expect_failures = [var.scheduler_region]
}

run "refuses_messages_stored_outside_the_eea" {
  command = plan
  variables {
    persistence_regions = ["europe-west1", "us-central1"]
  }
  expect_failures = [var.persistence_regions]
}

run "refuses_another_time_zone" {
  command = plan
  variables {
    time_zone = "UTC"
  }
  expect_failures = [var.time_zone]
}

run "refuses_a_schedule_that_is_no_cron_expression" {
  command = plan
  variables {
    jobs = { "relay-outbox" = { schedule = "every 5 minutes", description = "x" } }
  }
  expect_failures = [var.jobs]
}
