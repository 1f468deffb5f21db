output "instance_name" {
  description = "The Filestore instance's name."
  value       = google_filestore_instance.this.name
}

output "instance_id" {
  description = "The Filestore instance's ID."
  value       = google_filestore_instance.this.id
}

output "nfs_server" {
  description = "The instance's IP address in the VPC: the NFS server the card service mounts."
  value       = google_filestore_instance.this.networks[0].ip_addresses[0]
}

output "nfs_path" {
  description = "The exported path of the share (/SHARE_NAME): what the card service mounts."
  value       = "/${google_filestore_instance.this.file_shares[0].name}"
}
