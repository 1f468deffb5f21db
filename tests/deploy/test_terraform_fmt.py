"""Check 1: `terraform fmt -check -recursive terraform/`, the real HCL parser and canonical form.

rc 0 = formatted, 3 = a file is not canonical, 2 = a file does not parse. Skips (with the
reason) where no terraform binary is installed; see conftest.py.
"""

from __future__ import annotations

from tests.deploy.conftest import REPO, TERRAFORM


def test_terraform_folder_is_formatted(terraform):
    proc = terraform("fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM), cwd=REPO)
    assert proc.returncode == 0, (
        f"terraform fmt -check failed (rc {proc.returncode}); run `terraform fmt -recursive terraform/`:\n"
        f"{proc.stdout}{proc.stderr}"
    )


def test_fmt_check_refuses_an_unformatted_file_and_a_syntax_error(terraform, tmp_path):
    (tmp_path / "ok.tf").write_text('variable "x" {\n  type    = string\n  default = "a"\n}\n')
    unformatted = tmp_path / "unformatted.tf"
    unformatted.write_text('variable "x" {\ntype = string\n   default="a"\n}\n')
    proc = terraform("fmt", "-check", "-recursive", "-no-color", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "unformatted.tf" in proc.stdout and "ok.tf" not in proc.stdout

    unformatted.unlink()
    (tmp_path / "broken.tf").write_text('resource "google_pubsub_topic" "t" {\n  name = "x"\n')
    proc = terraform("fmt", "-check", "-recursive", "-no-color", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "broken.tf" in proc.stderr
