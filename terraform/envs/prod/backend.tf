# State in a GCS bucket (versioned, EEA, made once by hand: ../../README.md). The bucket is
# given at init, so no project's bucket name is written here:
#   terraform init -backend-config="bucket=STATE_BUCKET"
terraform {
  backend "gcs" {
    prefix = "fjordbank/prod"
  }
}
