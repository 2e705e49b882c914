"""The environment's KMS key and the services allowed to use it."""

from __future__ import annotations

import json

import pytest
from cdktf import Testing as CdktfTesting
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey

from lib.settings import ConfigError, Settings
from lib.stack import STACK_NAME, PaymentsStack
from tests.infra.conftest import KEY_ADMIN_ROLE_ARN


def _is_endpoint(value: str | list, service: str, region: str) -> bool:
    """``<service>.<region>.<dns suffix>``, the suffix the partition's (not amazonaws.com)."""
    return (
        isinstance(value, str)
        and value.startswith(f"{service}.{region}.${{data.aws_partition.")
        and value.endswith(".dns_suffix}")
    )


class _Synth:
    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def resources(self, resource_type: str) -> dict:
        return self.doc["resource"][resource_type]

    def one(self, resource_type: str) -> dict:
        (only,) = self.resources(resource_type).values()
        return only


def _synth_with(env: dict[str, str], build_dir) -> _Synth:
    settings = Settings.from_env(env)
    stack = PaymentsStack(CdktfTesting.app(), STACK_NAME, settings=settings, build_dir=build_dir)
    return _Synth(json.loads(CdktfTesting.synth(stack)))


def _key_policy(synth) -> dict:
    return json.loads(synth.one(KmsKey.TF_RESOURCE_TYPE)["policy"])


class TestKeys:
    def test_one_customer_managed_key_with_yearly_rotation(self, each):
        assert len(each.resources(KmsKey.TF_RESOURCE_TYPE)) == 1
        assert each.has(
            KmsKey.TF_RESOURCE_TYPE, {"enable_key_rotation": True, "rotation_period_in_days": 365}
        )

    def test_alias_names_the_environment(self, each):
        assert each.has(
            KmsAlias.TF_RESOURCE_TYPE, {"name": f"alias/payments-{each.settings.suffix}"}
        )

    def test_cloudwatch_logs_of_this_region_is_the_logs_principal(self, each):
        statements = _key_policy(each)["Statement"]
        logs = [
            s
            for s in statements
            if _is_endpoint(s["Principal"].get("Service", ""), "logs", each.settings.region)
        ]
        assert len(logs) == 1
        assert "kms:EncryptionContext:aws:logs:arn" in logs[0]["Condition"]["ArnLike"]

    def test_account_roles_use_the_key_only_through_the_platforms_services(self, each):
        statement = next(
            s
            for s in _key_policy(each)["Statement"]
            if s["Sid"] == "AccountRolesUseKeyThroughServices"
        )
        via = statement["Condition"]["StringEquals"]["kms:ViaService"]
        region = each.settings.region
        for service in ("dynamodb", "sqs", "sns", "s3", "states"):
            assert [v for v in via if _is_endpoint(v, service, region)]
        assert "kms:CallerAccount" in statement["Condition"]["StringEquals"]

    def _statement(self, synth, sid: str) -> dict:
        return next(s for s in _key_policy(synth)["Statement"] if s["Sid"] == sid)

    def test_the_account_root_can_only_recover_the_key(self, each):
        root = [
            s
            for s in _key_policy(each)["Statement"]
            if s["Principal"].get("AWS", "").endswith(":root") and "Condition" not in s
        ]
        (recovery,) = root
        assert sorted(recovery["Action"]) == [
            "kms:DescribeKey",
            "kms:GetKeyPolicy",
            "kms:PutKeyPolicy",
        ]

    def test_a_named_administrator_manages_the_key_but_cannot_use_it(self, each):
        admin = self._statement(each, "KeyAdministrator")
        assert "Condition" not in admin
        assert not admin["Principal"]["AWS"].endswith(":root")
        assert "kms:Put*" in admin["Action"] and "kms:ScheduleKeyDeletion" in admin["Action"]
        data = ("Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "CreateGrant", "Create*")
        assert not [a for a in admin["Action"] if a.removeprefix("kms:").startswith(data)]

    def test_only_dev_defaults_the_administrator_to_the_deploying_role(self, each):
        principal = self._statement(each, "KeyAdministrator")["Principal"]["AWS"]
        if each.profile.name == "dev":
            assert principal.startswith("${data.aws_iam_session_context.")
            assert principal.endswith(".issuer_arn}")
        else:
            assert principal == KEY_ADMIN_ROLE_ARN

    @pytest.mark.parametrize("profile", ["staging", "production"])
    def test_staging_and_production_require_an_administrator_apart_from_the_deployer(self, profile):
        with pytest.raises(ConfigError, match=f"KMS_ADMIN_ROLE_ARN is required for the {profile}"):
            Settings.from_env({"ENVIRONMENT": profile, "ENVIRONMENT_SUFFIX": "keys"})

    def test_kms_admin_role_arn_names_the_administrator(self, build_dir):
        role = "arn:aws:iam::123456789012:role/payments-key-admins"
        synth = _synth_with({"KMS_ADMIN_ROLE_ARN": role}, build_dir)
        assert self._statement(synth, "KeyAdministrator")["Principal"]["AWS"] == role

    def test_malformed_admin_role_is_a_clear_error(self):
        for bad in ("payments-key-admins", "arn:aws:iam::123456789012:user/alice"):
            with pytest.raises(ConfigError, match="KMS_ADMIN_ROLE_ARN="):
                Settings.from_env({"KMS_ADMIN_ROLE_ARN": bad})

    def test_grants_only_for_aws_resources(self, each):
        grants = self._statement(each, "GrantsOnlyForAwsResources")
        assert grants["Action"] == ["kms:CreateGrant"]
        assert grants["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
        use = self._statement(each, "AccountRolesUseKeyThroughServices")
        assert "kms:CreateGrant" not in use["Action"]

    def test_logs_may_use_the_key_for_this_environments_log_groups_only(self, each):
        logs = self._statement(each, "CloudWatchLogsEncryptsThisEnvironmentsLogGroups")
        groups = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        created = {g["name"] for g in each.resources(CloudwatchLogGroup.TF_RESOURCE_TYPE).values()}
        names = {g.split(":log-group:", 1)[1] for g in groups}
        # Every group the stack creates is covered (the execution logs by their API id as *) ...
        for name in created:
            assert name in names or name.startswith("API-Gateway-Execution-Logs_"), name
        # ... and nothing wider: no other environment's groups, no account-wide wildcard.
        assert all(each.settings.suffix in n for n in names)
        assert [n for n in names if "*" in n] == [
            f"API-Gateway-Execution-Logs_*/{each.settings.suffix}"
        ]

    def test_no_statement_has_a_wildcard_principal_or_action(self, each):
        for statement in _key_policy(each)["Statement"]:
            assert statement["Principal"] != "*"
            assert "*" not in statement["Principal"].get("AWS", "")
            assert "kms:*" not in statement["Action"] and "*" not in statement["Action"]

    def test_deletion_window_is_longer_where_deletion_protection_is_on(self, production, dev):
        assert production.one(KmsKey.TF_RESOURCE_TYPE)["deletion_window_in_days"] == 30
        assert dev.one(KmsKey.TF_RESOURCE_TYPE)["deletion_window_in_days"] == 7
