# The card vault's file system: the folder FJB_VAULT_PATH of the card service
# (run_services/cards.py; fjordbank/config.py gives it no default in production, and the
# service refuses to start without it). The vault is one SQLite file (fjordbank/adapters/
# vault.py: card numbers sealed with AES-GCM under FJB_VAULT_KEY before they are written)
# that one instance writes (cards runs at most one instance): it needs a POSIX file system
# with byte-range locks, fsync and atomic renames that keeps every write. Cloud Storage FUSE
# (the clearing exchange's bucket) is none of that: no file locking, a file is staged in the
# instance's memory and uploaded whole when closed, the last writer wins, and SQLite's
# journal and WAL files would turn into objects rewritten at each commit. So the vault lives
# on an NFS share of a Filestore instance in the bank's VPC, which Cloud Run mounts (the
# consumer module's nfs_volumes; gen2 execution environment, Direct VPC egress).
#
# Only the consumers' egress range may mount the share (nfs_export_options); Filestore
# reaches the VPC by peering, on the /29 of reserved_ip_range, outside every subnet.
resource "google_filestore_instance" "this" {
  project     = var.project_id
  name        = var.name
  location    = var.location
  tier        = var.tier
  description = "Fjordbank card vault (FJB_VAULT_PATH of the card service)."
  labels      = var.labels

  # a `terraform destroy` or a console click never takes the card numbers with it
  deletion_protection_enabled = var.deletion_protection
  deletion_protection_reason  = var.deletion_protection ? "The card vault: the only copy of the issued card numbers." : null

  file_shares {
    name        = var.share_name
    capacity_gb = var.capacity_gb

    nfs_export_options {
      ip_ranges   = var.client_ranges
      access_mode = "READ_WRITE"
      # root on a client stays root: the share's root folder is root's when the instance is
      # made, and a root client gives it to the image's user once (README, first-time set-up)
      squash_mode = "NO_ROOT_SQUASH"
    }
  }

  networks {
    network           = var.network_name
    modes             = ["MODE_IPV4"]
    connect_mode      = "DIRECT_PEERING"
    reserved_ip_range = var.reserved_ip_range
  }

  lifecycle {
    precondition {
      condition     = var.tier != "BASIC_SSD" || var.capacity_gb >= 2560
      error_message = "A BASIC_SSD instance has at least 2560 GB (2.5 TiB)."
    }
  }
}
