output "bucket_name" {
  description = "The bucket's name: what the clearing service mounts."
  value       = google_storage_bucket.this.name
}

output "bucket_url" {
  description = "The bucket's gs:// URL (for the transfer service)."
  value       = google_storage_bucket.this.url
}
