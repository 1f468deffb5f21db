output "network_id" {
  description = "The VPC's ID."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "The VPC's name."
  value       = google_compute_network.this.name
}

output "gke_subnetwork_id" {
  description = "The GKE nodes' subnet ID."
  value       = google_compute_subnetwork.gke.id
}

output "gke_pods_range_name" {
  description = "The name of the pods' secondary range."
  value       = "pods"
}

output "gke_services_range_name" {
  description = "The name of the Services' secondary range."
  value       = "services"
}

output "run_egress_subnetwork_id" {
  description = "The subnet of the consumers' Direct VPC egress."
  value       = google_compute_subnetwork.run_egress.id
}

output "vpc_connector_id" {
  description = "The functions' connector (projects/P/locations/R/connectors/NAME): functions/main.py's set_global_options(vpc_connector=...)."
  value       = google_vpc_access_connector.functions.id
}

output "vpc_connector_name" {
  description = "The functions' connector's short name."
  value       = google_vpc_access_connector.functions.name
}

output "nats_client_source_ranges" {
  description = "The only ranges admitted to NATS's client port: the Service's loadBalancerSourceRanges must equal these."
  value       = [var.run_egress_cidr, var.connector_cidr]
}

output "nats_node_tag" {
  description = "The network tag the NATS node pool must carry for the firewall rules to apply."
  value       = var.nats_node_tag
}
