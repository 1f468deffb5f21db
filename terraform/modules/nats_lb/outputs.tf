output "address" {
  description = "The load balancer's internal IPv4 address."
  value       = google_compute_address.nats.address
}

output "address_name" {
  description = "The reserved address's name."
  value       = google_compute_address.nats.name
}

output "nats_urls" {
  description = "What FJB_NATS_URLS must hold for every client (consumers and functions)."
  value       = ["tls://${google_compute_address.nats.address}:4222"]
}

output "service_annotations" {
  description = "The annotations the NATS client Service needs (Helm values or the k8s/nats manifest)."
  value = {
    "networking.gke.io/load-balancer-type"                         = "Internal"
    "networking.gke.io/load-balancer-ip-addresses"                 = google_compute_address.nats.name
    "networking.gke.io/internal-load-balancer-allow-global-access" = var.global_access ? "true" : "false"
  }
}

output "load_balancer_source_ranges" {
  description = "The Service's loadBalancerSourceRanges."
  value       = var.allowed_source_ranges
}
