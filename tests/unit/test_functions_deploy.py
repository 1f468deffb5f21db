"""The functions' deploy options come from Terraform's outputs (functions/.env.PROJECT) and
are never silently defaulted outside the emulator."""

from __future__ import annotations

import pytest

from fjordbank.config import FunctionsDeploy, functions_deploy_options
from fjordbank.errors import ConfigError

OUTPUTS = {
    "FJB_FUNCTIONS_SERVICE_ACCOUNT": "fjb-edge@p.iam.gserviceaccount.com",
    "FJB_VPC_CONNECTOR": "projects/p/locations/europe-west1/connectors/fjb-functions",
}


def test_the_emulator_needs_none():
    assert functions_deploy_options({"FUNCTIONS_EMULATOR": "true"}) == FunctionsDeploy()


def test_a_deploy_takes_them_from_the_environment():
    got = functions_deploy_options(OUTPUTS)
    assert got == FunctionsDeploy(
        OUTPUTS["FJB_FUNCTIONS_SERVICE_ACCOUNT"], OUTPUTS["FJB_VPC_CONNECTOR"], "PRIVATE_RANGES_ONLY"
    )
    assert functions_deploy_options({**OUTPUTS, "FJB_VPC_EGRESS": "ALL_TRAFFIC"}).vpc_egress == "ALL_TRAFFIC"


@pytest.mark.parametrize("missing", sorted(OUTPUTS))
def test_a_missing_output_is_a_start_up_error(missing):
    env = {k: v for k, v in OUTPUTS.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing} not set.*functions_env.py"):
        functions_deploy_options(env)


def test_an_unknown_egress_is_refused():
    with pytest.raises(ConfigError, match="FJB_VPC_EGRESS"):
        functions_deploy_options({**OUTPUTS, "FJB_VPC_EGRESS": "EVERYTHING"})
