output "metric_names" {
  description = "The log-based metrics' names; PromQL queries each as logging_googleapis_com:user_<name>."
  value       = sort([google_logging_metric.edge_requests.name, google_logging_metric.push_results.name])
}

output "metric_types" {
  description = "The Cloud Monitoring metric types of the log-based metrics (logging.googleapis.com/user/<name>)."
  value       = { for m in [google_logging_metric.edge_requests, google_logging_metric.push_results] : m.name => "logging.googleapis.com/user/${m.name}" }
}
