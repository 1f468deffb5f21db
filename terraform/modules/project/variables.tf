variable "project_id" {
  description = "The Google Cloud project (one per environment) that Firebase is added to."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "services" {
  description = "The APIs the bank uses: Cloud Run, Functions (2nd gen: Cloud Build, Eventarc), Firestore and its rules, Firebase, FCM, Pub/Sub, Scheduler, Secret Manager, Artifact Registry, GKE, Serverless VPC Access, Monitoring and Logging."
  type        = set(string)
  nullable    = false
  default = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "eventarc.googleapis.com",
    "fcm.googleapis.com",
    "firebase.googleapis.com",
    "firebaseappcheck.googleapis.com",
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "identitytoolkit.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "vpcaccess.googleapis.com",
  ]

  validation {
    condition     = length(var.services) > 0 && alltrue([for s in var.services : can(regex("^[a-z0-9-]+\\.googleapis\\.com$", s))])
    error_message = "services must be API service names such as run.googleapis.com."
  }
}
