terraform {
  required_version = ">= 1.6"

  required_providers {
    # 6.50 is the schema the offline check reads (tests/deploy/test_terraform_schema.py);
    # stay on 6.x until that check can read a newer one.
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50"
    }
  }
}
