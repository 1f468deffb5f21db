variable "project_id" {
  description = "The project whose Cloud Logging counts the functions' log lines (the functions run there)."
  type        = string
  nullable    = false
}
