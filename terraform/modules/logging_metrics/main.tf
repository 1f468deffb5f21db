# Log-based metrics: the Firebase functions cannot be scraped, so they count in structured
# log lines (fjordbank/runtime/log_metrics.py): one JSON line per event on stdout, which
# Cloud Logging stores as the entry's jsonPayload, with a fixed field `metric` naming the
# metric. Each google_logging_metric below counts the entries whose jsonPayload.metric is
# its name (an exact match: nothing else writes that field) and takes its labels from the
# line's other fields. PromQL (Cloud Monitoring, Managed Prometheus) queries them as
# logging_googleapis_com:user_<name>; monitoring/metrics.yaml (source functions_logs)
# catalogues them, and tests/deploy/test_terraform_logging_metrics.py compares names,
# labels and filters with the code.

resource "google_logging_metric" "edge_requests" {
  project     = var.project_id
  name        = "fjb_edge_requests"
  description = "Requests at the edge (every callable and every payment request), by function, outcome (accepted, refused, error) and reason code."
  filter      = "jsonPayload.metric=\"fjb_edge_requests\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Fjordbank edge requests"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The Firebase function: a callable's name or on_payment_request."
    }
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "accepted, refused (a reason code the caller can act on) or error (a failure of ours)."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "The reason code (fjordbank/domain/reasons.py), none when accepted, internal for an error that is no refusal."
    }
  }

  label_extractors = {
    "function" = "EXTRACT(jsonPayload.function)"
    "outcome"  = "EXTRACT(jsonPayload.outcome)"
    "reason"   = "EXTRACT(jsonPayload.reason)"
  }
}

resource "google_logging_metric" "push_results" {
  project     = var.project_id
  name        = "fjb_push_results"
  description = "FCM sends of the on_push function, by push kind, outcome (sent, failed) and FCM error code."
  filter      = "jsonPayload.metric=\"fjb_push_results\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Fjordbank push results"

    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "The push's kind (fjordbank/domain/notifications.py), e.g. payments or cards."
    }
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "sent or failed."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "FCM's error code (UNREGISTERED, QUOTA_EXCEEDED, UNAVAILABLE, ...), none when sent."
    }
  }

  label_extractors = {
    "kind"    = "EXTRACT(jsonPayload.kind)"
    "outcome" = "EXTRACT(jsonPayload.outcome)"
    "reason"  = "EXTRACT(jsonPayload.reason)"
  }
}
