"""Check 3: every google resource type, argument and block in terraform/ exists in provider 6.50.

The schema comes from the npm package @cdktf/provider-google 16.12.1 (= hashicorp/google
6.50.0), condensed by tests/deploy/tfschema.py; the HCL is parsed by python-hcl2. Both are
installed by scripts/deploy_tools.sh: without them these tests fail with that command.
Also the modules' own wiring (var., local., module.X.Y references; module call arguments),
which `terraform validate` would check if the provider could be downloaded.
"""

from __future__ import annotations

import re
import textwrap

from tests.deploy import tfschema
from tests.deploy.conftest import TERRAFORM


def test_schema_is_the_pinned_provider(provider_schema, tf_docs):
    assert provider_schema["package"] == "@cdktf/provider-google@16.12.1"
    assert provider_schema["provider_version"] == "6.50.0"
    assert len(provider_schema["resources"]) > 1000
    # what the versions pin is what the schema checks
    major, minor, _ = provider_schema["provider_version"].split(".")
    pins = {
        name: spec["version"]
        for path, doc in tf_docs.items()
        if path.endswith("versions.tf")
        for block in doc.get("terraform", [])
        for providers in block.get("required_providers", [])
        for name, spec in providers.items()
        if not tfschema.is_meta(name)
    }
    assert pins and set(pins.values()) == {f'"~> {major}.{minor}"'}, pins


def test_every_google_name_exists_in_the_provider_schema(tf_docs, provider_schema):
    findings = tfschema.check_schema(tf_docs, provider_schema)
    assert not findings, "not in google provider 6.50:\n" + "\n".join(map(str, findings))


def test_module_wiring_resolves(tf_docs):
    findings = tfschema.check_wiring(tf_docs)
    assert not findings, "\n".join(map(str, findings))


def test_every_module_and_environment_is_checked(tf_docs):
    checked = {str(p).split("/")[2] for p in tf_docs if p.startswith(("terraform/modules/", "terraform/envs/"))}
    expected = {p.name for p in (TERRAFORM / "modules").iterdir()} | {p.name for p in (TERRAFORM / "envs").iterdir()}
    assert checked == expected


# ---- the same checks fed broken inputs: they must report them -----------------------------------

BROKEN = textwrap.dedent(
    """
    resource "google_cloud_run_v2_worker_pool" "ledger" {
      name     = "ledger"
      location = "europe-north1"
      scaling {
        scaling_mode        = "MANUAL"
        manual_instance_cnt = 1
      }
      template {
        containers {
          image = "registry.example/fjordbank/services@sha256:${"0" * 64}"
          envv {
            name  = "SERVICE"
            value = "ledger"
          }
        }
      }
    }

    resource "google_firestore_databse" "db" {
      name = "(default)"
    }

    resource "google_pubsub_topic" "push" {
      labels = { app = "fjordbank" }
      message_storage_policy {
        allowed_persistence_regions = ["europe-north1"]
      }
      message_storage_policy {
        allowed_persistence_regions = ["europe-west1"]
      }
      schema_settings = { schema = "x" }
      dynamic "message_transformz" {
        for_each = []
        content {}
      }
    }

    output "uri" {
      value = google_pubsub_topic.push.urii
    }

    output "other" {
      value = google_pubsub_topic.pull.name
    }
    """
)


def test_schema_check_reports_misspelled_and_unknown_names(hcl, provider_schema, tmp_path):
    path = tmp_path / "broken.tf"
    path.write_text(BROKEN.replace('${"0" * 64}', "0" * 64))
    findings = [f"{f.where}: {f.message}" for f in tfschema.check_schema(hcl([path]), provider_schema)]
    expected = [
        "google_cloud_run_v2_worker_pool.ledger.scaling: unknown argument 'manual_instance_cnt'",
        "google_cloud_run_v2_worker_pool.ledger.template.containers: unknown block 'envv'",
        "google_firestore_databse.db: unknown resource type 'google_firestore_databse'",
        "google_pubsub_topic.push: missing required argument 'name'",
        "google_pubsub_topic.push: block 'message_storage_policy' may be given once, found 2",
        "google_pubsub_topic.push: 'schema_settings' is a block, written as an argument",
        "google_pubsub_topic.push: unknown block 'message_transformz' (dynamic)",
        "google_pubsub_topic.push.urii: google_pubsub_topic has no attribute 'urii'",
        "google_pubsub_topic.pull.name: reference to google_pubsub_topic.pull, not declared here",
    ]
    for line in expected:
        assert line in findings, f"not reported: {line}\nreported: {findings}"
    assert len(findings) == len(expected), findings


def test_schema_check_reports_an_unknown_provider_argument_and_data_source(hcl, provider_schema, tmp_path):
    path = tmp_path / "broken.tf"
    path.write_text(
        'provider "google" {\n  projekt = "x"\n}\n'
        'data "google_projekt" "p" {}\n'
        'data "google_project" "q" {\n  project_idd = "x"\n}\n'
    )
    findings = [f"{f.where}: {f.message}" for f in tfschema.check_schema(hcl([path]), provider_schema)]
    assert "provider.google: unknown argument 'projekt'" in findings
    assert "data.google_projekt.p: unknown data source 'google_projekt'" in findings
    assert "data.google_project.q: unknown argument 'project_idd'" in findings


def test_schema_check_reports_a_file_that_does_not_parse(hcl, provider_schema, tmp_path):
    path = tmp_path / "broken.tf"
    path.write_text('resource "google_pubsub_topic" "t" {\n  name = \n')
    findings = tfschema.check_schema(hcl([path]), provider_schema)
    assert len(findings) == 1 and "does not parse" in findings[0].message


def test_wiring_check_reports_unresolved_references_and_bad_module_calls(hcl, tmp_path):
    module = tmp_path / "modules" / "m"
    module.mkdir(parents=True)
    (module / "variables.tf").write_text(
        'variable "region" {\n  type = string\n  validation {\n    condition     = var.other != ""\n'
        '    error_message = "x"\n  }\n}\nvariable "other" {\n  type    = string\n  default = "x"\n}\n'
    )
    (module / "outputs.tf").write_text('output "name" {\n  value = var.regoin\n}\n')
    env = tmp_path / "env"
    env.mkdir()
    (env / "main.tf").write_text(
        'module "m" {\n  source = "../modules/m"\n  regon  = "europe-north1"\n}\n'
        'output "a" {\n  value = module.m.nmae\n}\n'
        'output "b" {\n  value = local.missing\n}\n'
        'output "c" {\n  value = module.nope.name\n}\n'
    )
    found = [f"{f.where}: {f.message}" for f in tfschema.check_wiring(hcl([*module.glob("*.tf"), env / "main.tf"]))]
    for line in [
        "var.regoin: undeclared variable",
        "variable.region: validation refers to var.other",
        "module.m: the module has no variable 'regon'",
        "module.m: required variable 'region' not passed",
        "module.m.nmae: module 'm' has no output 'nmae'",
        "local.missing: undeclared local value",
        "module.nope.name: undeclared module call",
        "variable.region: declared but never used",
    ]:
        assert line in found, f"not reported: {line}\nreported: {found}"


def test_allowlist_of_newer_fields_is_documented():
    """A field the 6.50 schema cannot confirm may be allowlisted only with the reason."""
    for key, reason in tfschema.ALLOWED_UNKNOWN.items():
        assert len(key) == 3 and re.match(r"^google_", key[0]) and len(reason) > 20, (key, reason)
