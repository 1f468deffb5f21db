# No inputs: this module restates constants of the code (main.tf) and is checked against
# them by tests/deploy/test_terraform_names.py.
