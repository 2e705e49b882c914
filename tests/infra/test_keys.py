"""The environment's KMS key and the services allowed to use it."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey


def _is_endpoint(value: str | list, service: str, region: str) -> bool:
    """``<service>.<region>.<dns suffix>``, the suffix the partition's (not amazonaws.com)."""
    return (
        isinstance(value, str)
        and value.startswith(f"{service}.{region}.${{data.aws_partition.")
        and value.endswith(".dns_suffix}")
    )


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

    def test_cloudwatch_logs_of_this_region_may_encrypt_only_log_groups_of_this_account(self, each):
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

    def test_the_account_manages_the_key_but_uses_it_for_data_only_through_services(self, each):
        unconditional = [
            s
            for s in _key_policy(each)["Statement"]
            if "AWS" in s["Principal"] and "Condition" not in s
        ]
        (admin,) = unconditional
        assert "kms:Put*" in admin["Action"] and "kms:ScheduleKeyDeletion" in admin["Action"]
        data = ("Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "CreateGrant", "Create*")
        assert not [a for a in admin["Action"] if a.removeprefix("kms:").startswith(data)]

    def test_no_statement_has_a_wildcard_principal_or_action(self, each):
        for statement in _key_policy(each)["Statement"]:
            assert statement["Principal"] != "*"
            assert "*" not in statement["Principal"].get("AWS", "")
            assert "kms:*" not in statement["Action"] and "*" not in statement["Action"]

    def test_deletion_window_is_longer_where_deletion_protection_is_on(self, production, dev):
        assert production.one(KmsKey.TF_RESOURCE_TYPE)["deletion_window_in_days"] == 30
        assert dev.one(KmsKey.TF_RESOURCE_TYPE)["deletion_window_in_days"] == 7
