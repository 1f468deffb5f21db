# The reserved internal address of NATS's internal passthrough (L4) load balancer. The
# Service that uses it is Helm's/kubectl's (k8s/nats): type LoadBalancer, internal, on this
# address, with loadBalancerSourceRanges = allowed_source_ranges. A passthrough load
# balancer does not terminate TLS, so TLS 1.3, the client certificate and the per-service
# user are checked by NATS itself, end to end.
resource "google_compute_address" "nats" {
  project      = var.project_id
  name         = var.name
  region       = var.region
  subnetwork   = var.subnetwork_id
  address_type = "INTERNAL"
  purpose      = "GCE_ENDPOINT"
  address      = var.address
  description  = "NATS client port (4222) behind GKE's internal passthrough load balancer."
}
