# The project's APIs. The project itself, its billing and adding Firebase to it come first
# and by hand (terraform/README.md, "First-time set-up"): they need organisation rights that
# the deploying identity should not hold.
resource "google_project_service" "this" {
  for_each = var.services

  project = var.project_id
  service = each.value

  # Turning an API off from Terraform would stop the bank: never on destroy.
  disable_on_destroy         = false
  disable_dependent_services = false
}
