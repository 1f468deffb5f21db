terraform {
  # No provider: this module only restates names the code declares.
  required_version = ">= 1.6"
}
