# The names the code declares, restated once for Terraform. Each one must equal its
# constant in the Python code: tests/deploy/test_terraform_names.py fails when one differs
# (a service or NATS identity added to fjordbank/topology.py, a topic renamed in
# fjordbank/adapters/pubsub.py, a job added to fjordbank/service_layer/scheduled.py).
locals {
  # fjordbank.topology.SERVICES: the run_services, one Cloud Run service and service account each.
  consumer_services = ["screening", "ledger", "clearing", "notifier", "cards", "insights"]

  # fjordbank.topology.IDENTITIES: one NATS user each. "edge" is the Firebase functions,
  # "admin" creates streams and consumers (operators' tools), never a service.
  nats_identities = ["edge", "screening", "ledger", "clearing", "notifier", "cards", "insights", "admin"]

  # fjordbank.adapters.pubsub.PUSH_TOPIC: the notifier queues pushes here, on_push sends them.
  push_topic = "push-notifications"
  # fjordbank.adapters.pubsub.JOBS_TOPIC: Cloud Scheduler publishes {"job": NAME} here, on_scheduled_job runs it.
  jobs_topic = "scheduled-jobs"

  # fjordbank.service_layer.scheduled.JOBS, each with when it runs (Europe/Oslo).
  scheduled_jobs = {
    "submit-due-payments" = {
      # due payments and standing orders, and requests whose first publish failed
      # (status "received"): a due payment the account cannot cover waits for the next run
      schedule    = "*/15 * * * *"
      description = "Submits due scheduled payments and standing orders, and publishes requests whose first publish failed."
    }
    "release-expired-holds" = {
      schedule    = "7 * * * *"
      description = "Asks the card service to release card holds past their expiry."
    }
    "relay-outbox" = {
      schedule    = "*/5 * * * *"
      description = "Publishes customer and card events whose first publish failed."
    }
    "audit-ledger" = {
      # reads the whole ledger: hourly; the notifier exports its summary (fjb_audit_*)
      schedule    = "23 * * * *"
      description = "Runs the ledger audit and stores its summary in ops/ledgerAudit for the fjb_audit_* metrics."
    }
    "rescreen-customers" = {
      # every customer screened again against each new sanctions list: each run walks for
      # 6 minutes from where the last stopped, by the entries new since the last list walked
      # to the end (the first list, whole, takes several runs; docs/capacity.md)
      schedule    = "41 * * * *"
      description = "Screens every customer again against a new sanctions list and freezes those it names."
    }
  }

  # Secret Manager secret IDs per NATS identity.
  # Firebase hands a function each secret it declares (functions/main.py, `secrets=`) as
  # the environment variable of the same name, so the edge's secrets are named after the
  # variables fjordbank/config.py reads, and the edge gets the CA under FJB_NATS_CA too
  # (fjordbank/adapters/nats_conn.py takes a path or the PEM itself in each).
  nats_secret_ids = {
    for id in local.nats_identities : id => (id == "edge" ? {
      password = "FJB_NATS_PASSWORD"
      tls_cert = "FJB_NATS_CERT"
      tls_key  = "FJB_NATS_KEY"
      ca       = "FJB_NATS_CA"
      } : {
      password = "nats-${id}-password"
      tls_cert = "nats-${id}-tls-cert"
      tls_key  = "nats-${id}-tls-key"
    })
  }
  # The CA that signed the NATS server certificates: not secret, but every client mounts it.
  nats_ca_secret_id = "nats-ca-cert"
  # k8s/render.py SYSTEM_USER: the system account's user, beside the identities above; its
  # bcrypt hash goes into the servers' configuration with theirs (k8s/README.md).
  nats_system_password_secret_id = "nats-system-password"

  # A service's secrets beyond NATS: environment variable -> secret ID (fjordbank/config.py).
  service_secret_env = {
    cards = {
      FJB_VAULT_KEY             = "cards-vault-key"
      FJB_CVV_KEY               = "cards-cvv-key"
      FJB_CARD_PROCESSOR_SECRET = "cards-processor-secret"
    }
  }

  # Who publishes on PUSH_TOPIC (run_services/notifier.py).
  push_publishers = ["notifier"]

  # Who exchanges files with the clearing house (run_services calling
  # Settings.clearing_channel(): the folder FJB_CLEARING_DIR, a mounted bucket in production).
  clearing_services = ["clearing"]

  # Who screens payments against the sanctions list but exchanges no files (run_services
  # calling Settings.screening_list() and not clearing_channel()): the clearing bucket
  # mounted read-only, of which they may read the list alone (FJB_SANCTIONS_LIST).
  sanctions_readers = ["screening"]

  # Who keeps the card vault (run_services opening settings.vault_database: the Firestore
  # database FJB_VAULT_DATABASE of modules/card_vault, which only their identities may use)
  # and serves the card processor's API on its one HTTP port (FJB_CARD_API_PORT;
  # k8s/render.py CARD_SERVICES). One instance each: the processor's references in flight
  # and the approvals had live in the process (run_services/cards.py), not the vault.
  card_services = ["cards"]

  # fjordbank/runtime/http.py MAX_CONNECTIONS: the requests the card processor's API server
  # answers at once (the rest 503 "busy"). A card service's instance is sent as many
  # (max_concurrency, Knative's containerConcurrency): with the consumers' 10, one card
  # instance (max_instances 1) left the platform to queue or refuse the processor's
  # requests the service could have answered (found in review, 2026-12-06).
  card_api_max_connections = 64
}
