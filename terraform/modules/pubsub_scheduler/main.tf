# Pub/Sub hands events to the Firebase functions that must run there: pushes (FCM) and the
# scheduled jobs. Terraform owns the topics; `firebase deploy` owns the functions and the
# Eventarc subscriptions their triggers create on these topics.
resource "google_pubsub_topic" "push" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption. Messages live at most message_retention and carry a push's title and body (no account data); CMEK is an organisation-level choice.
  project                    = var.project_id
  name                       = var.push_topic
  labels                     = var.labels
  message_retention_duration = var.message_retention

  message_storage_policy {
    allowed_persistence_regions = var.persistence_regions
  }
}

resource "google_pubsub_topic" "jobs" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption. The messages are Cloud Scheduler's {"job": NAME}, no data; CMEK is an organisation-level choice.
  project                    = var.project_id
  name                       = var.jobs_topic
  labels                     = var.labels
  message_retention_duration = var.message_retention

  message_storage_policy {
    allowed_persistence_regions = var.persistence_regions
  }
}

resource "google_pubsub_topic_iam_member" "push_publishers" {
  for_each = var.push_publishers

  project = var.project_id
  topic   = google_pubsub_topic.push.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${each.value}"
}

# The due-payments run that could not release every due payment in its time publishes the
# next run at once (fjordbank/service_layer/scheduled.py, `continuation`): the payday's
# morning is released run after run, not one run every 15 minutes.
resource "google_pubsub_topic_iam_member" "jobs_publishers" {
  for_each = var.jobs_publishers

  project = var.project_id
  topic   = google_pubsub_topic.jobs.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${each.value}"
}

# One Cloud Scheduler job per scheduled job: it publishes {"job": NAME} on the jobs topic,
# which is what on_scheduled_job reads (functions/main.py). Every job is idempotent, so a
# retried or doubled run is harmless.
resource "google_cloud_scheduler_job" "this" {
  for_each = var.jobs

  project     = var.project_id
  region      = var.scheduler_region
  name        = each.key
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = var.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.jobs.id
    data       = base64encode(jsonencode({ job = each.key }))
  }

  retry_config {
    retry_count          = 3
    min_backoff_duration = "10s"
    max_backoff_duration = "120s"
  }
}
