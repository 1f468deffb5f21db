output "push_topic" {
  description = "The push topic's name (functions/main.py: on_message_published(topic=PUSH_TOPIC))."
  value       = google_pubsub_topic.push.name
}

output "jobs_topic" {
  description = "The jobs topic's name (functions/main.py: on_message_published(topic=JOBS_TOPIC))."
  value       = google_pubsub_topic.jobs.name
}

output "push_topic_id" {
  description = "The push topic's resource ID."
  value       = google_pubsub_topic.push.id
}

output "jobs_topic_id" {
  description = "The jobs topic's resource ID."
  value       = google_pubsub_topic.jobs.id
}

output "scheduler_jobs" {
  description = "The Cloud Scheduler jobs' names."
  value       = sort([for j in google_cloud_scheduler_job.this : j.name])
}
