"""Account-level settings live in their own stack, never in an environment (issue 9, item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cdktf import Testing as CdktfTesting
from cdktf_cdktf_provider_aws.api_gateway_account import ApiGatewayAccount
from cdktf_cdktf_provider_aws.api_gateway_stage import ApiGatewayStage
from cdktf_cdktf_provider_aws.iam_role import IamRole

from lib.account import (
    ACCOUNT_STACK_NAME,
    API_GATEWAY_LOGS_ROLE,
    AccountStack,
    account_state_key,
)
from lib.settings import ConfigError, Settings
from lib.stack import STACK_NAME

ROOT = Path(__file__).resolve().parents[2]
STATE = {"TERRAFORM_STATE_BUCKET": "ci-state-bucket", "TERRAFORM_STATE_BUCKET_REGION": "eu-west-1"}


@pytest.fixture(scope="module")
def account() -> dict:
    settings = Settings.from_env({"PAYMENTS_STACK": "account", "AWS_REGION": "eu-west-1"} | STATE)
    stack = AccountStack(CdktfTesting.app(), ACCOUNT_STACK_NAME, settings=settings)
    return json.loads(CdktfTesting.synth(stack))


class TestAccountStack:
    def test_sets_the_api_gateway_cloudwatch_role_once_for_the_account(self, account):
        (setting,) = account["resource"][ApiGatewayAccount.TF_RESOURCE_TYPE].values()
        (role_id,) = account["resource"][IamRole.TF_RESOURCE_TYPE]
        assert setting["cloudwatch_role_arn"] == f"${{aws_iam_role.{role_id}.arn}}"
        role = account["resource"][IamRole.TF_RESOURCE_TYPE][role_id]
        assert role["name"] == API_GATEWAY_LOGS_ROLE

    def test_the_role_carries_no_environment_suffix(self, account):
        (role,) = account["resource"][IamRole.TF_RESOURCE_TYPE].values()
        assert not role["name"].endswith(("-dev", "-staging", "-production"))

    def test_role_writes_only_api_gateway_log_groups(self, account):
        documents = account["data"]["aws_iam_policy_document"]
        (permissions,) = [v for k, v in documents.items() if "permissions" in k]
        (statement,) = permissions["statement"]
        assert all(
            ":log-group:API-Gateway-Execution-Logs_*" in r or ":log-group:/aws/apigateway/*" in r
            for r in statement["resources"]
        )

    def test_own_state_per_account_and_region_apart_from_every_environment(self, account):
        backend = account["terraform"]["backend"]["s3"]
        assert backend["key"] == "payments/_account/eu-west-1/terraform.tfstate"
        assert backend["use_lockfile"] is True and backend["encrypt"] is True
        # No suffix can hold "_", so no environment's key payments/<suffix>/... collides.
        with pytest.raises(ConfigError):
            Settings.from_env({"ENVIRONMENT_SUFFIX": "_account"})

    def test_state_key_follows_the_region(self):
        settings = Settings.from_env({"AWS_REGION": "us-gov-west-1"})
        assert account_state_key(settings) == "payments/_account/us-gov-west-1/terraform.tfstate"

    def test_tagged_as_account_level(self, account):
        (provider,) = account["provider"]["aws"]
        assert provider["default_tags"][0]["tags"]["Environment"] == "account"


class TestEnvironmentsOwnNoAccountSetting:
    def test_no_environment_touches_the_account_setting_or_its_role(self, each):
        assert not each.resources(ApiGatewayAccount.TF_RESOURCE_TYPE)
        names = [r["name"] for r in each.resources(IamRole.TF_RESOURCE_TYPE).values()]
        assert API_GATEWAY_LOGS_ROLE not in names
        assert not [n for n in names if "apigateway" in n]

    def test_stage_still_logs_through_the_account_role(self, each):
        stage = each.one(ApiGatewayStage.TF_RESOURCE_TYPE)
        assert stage["access_log_settings"]["destination_arn"]


class TestMainSelectsOneStack:
    def test_plain_deploy_is_the_environment(self):
        assert Settings.from_env({}).stack == "environment"

    def test_payments_stack_account_selects_the_account_stack(self):
        assert Settings.from_env({"PAYMENTS_STACK": "account"}).stack == "account"
        assert ACCOUNT_STACK_NAME != STACK_NAME

    def test_the_local_cloud_deploys_both_stacks_by_these_names(self):
        from localcloud import deploy

        assert (deploy.ACCOUNT_STACK, deploy.STACK) == (ACCOUNT_STACK_NAME, STACK_NAME)

    def test_unknown_stack_is_a_clear_error(self):
        with pytest.raises(ConfigError, match="PAYMENTS_STACK="):
            Settings.from_env({"PAYMENTS_STACK": "shared"})


@pytest.mark.slow
def test_main_synthesizes_only_the_account_stack_when_asked(tmp_path):
    # A real process: the jsii kernel reads CDKTF_OUTDIR from the environment it starts with.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")} | {
        "PAYMENTS_STACK": "account",
        "CDKTF_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert list(manifest["stacks"]) == [ACCOUNT_STACK_NAME]
    doc = json.loads((tmp_path / "stacks" / ACCOUNT_STACK_NAME / "cdk.tf.json").read_text())
    assert list(doc["resource"][ApiGatewayAccount.TF_RESOURCE_TYPE])
    assert "aws_lambda_function" not in doc["resource"]
