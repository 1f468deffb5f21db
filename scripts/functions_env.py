"""Write functions/.env.PROJECT from `terraform output -json`, before `firebase deploy`.

The Firebase CLI loads functions/.env.PROJECT into the environment when it reads
functions/main.py to build the deploy manifest and when the functions run, so the values
Terraform owns (the runtime service account, the VPC connector the functions reach NATS
through, NATS's address) reach `set_global_options` and `load_settings` from one source:

    terraform -chdir=terraform/envs/prod output -json > tf-outputs.json
    python3 scripts/functions_env.py tf-outputs.json --project PROJECT

A missing or empty output is an error naming it (the functions would otherwise deploy under
the default service account, without the connector, and never reach NATS). Secrets are
never written here: the functions declare them (`secrets=`) and Secret Manager supplies them.
Standard library only, like the predeploy hook.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# environment variable -> terraform output (terraform/envs/*/outputs.tf)
FROM_OUTPUTS = {
    "FJB_FUNCTIONS_SERVICE_ACCOUNT": "functions_service_account",
    "FJB_VPC_CONNECTOR": "vpc_connector",
    "FJB_VPC_EGRESS": "vpc_connector_egress_settings",
    "FJB_NATS_URLS": "nats_urls",
    "FJB_BANK_REGS": "bank_regs",
}
# Where a deploy's sanctions list is (the EU's consolidated list, git-ignored: the deploy
# pipeline fetches it before `firebase deploy`, whose predeploy hook copies emulators/sanctions
# into functions/). Relative to the package's root (fjordbank.config). Without it onboarding
# refuses every application outside the emulator rather than screen against the sample.
SANCTIONS_LIST = "emulators/sanctions/eu-fsf.xml"
FIXED = {
    "FJB_NATS_USER": "edge",  # the functions' NATS identity (fjordbank/topology.py)
    "FJB_SANCTIONS_LIST": SANCTIONS_LIST,
}


class OutputError(ValueError):
    pass


def env_from_outputs(outputs: dict, project: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for var, name in FROM_OUTPUTS.items():
        value = (outputs.get(name) or {}).get("value")
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str) or not value.strip():
            raise OutputError(f"terraform output {name!r} (for {var}) is missing or empty")
        env[var] = value.strip()
    return {**env, **FIXED, "FJB_PROJECT_ID": project}


def render(env: dict[str, str]) -> str:
    lines = ["# written by scripts/functions_env.py from `terraform output -json`; do not edit"]
    for key, value in env.items():
        if any(c in value for c in "\n\"'#\\"):
            raise OutputError(f"{key} has a character a .env line cannot carry: {value!r}")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", type=Path, help="the JSON of `terraform output -json`")
    parser.add_argument("--project", required=True, help="the Firebase/GCP project id")
    parser.add_argument("--out", type=Path, help="default: functions/.env.PROJECT")
    args = parser.parse_args(argv)
    try:
        env = env_from_outputs(json.loads(args.outputs.read_text()), args.project)
        text = render(env)
    except (OSError, json.JSONDecodeError, OutputError) as exc:
        print(f"functions_env: error: {exc}", file=sys.stderr)
        return 1
    out = args.out or REPO / "functions" / f".env.{args.project}"
    out.write_text(text)
    print(f"wrote {out} ({', '.join(env)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
