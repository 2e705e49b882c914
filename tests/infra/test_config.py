"""SSM parameters under /payments/<suffix>/."""

from __future__ import annotations

import json

from cdktf import Testing as CdktfTesting
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter

from lib.settings import Settings
from lib.stack import STACK_NAME, PaymentsStack

PUBLISHED = {
    "api_url", "batch_bucket_name", "payments_table_name", "processing_status_table_name",
    "audit_log_table_name", "processing_queue_url", "payment_events_topic_arn", "state_machine_arn",
    "payment_events_subscriber_queue_url", "audit_archive_bucket_name",
}  # fmt: skip


class TestConfig:
    def test_endpoints_and_names_are_published_under_the_environments_path(self, each):
        names = {p["name"] for p in each.resources(SsmParameter.TF_RESOURCE_TYPE).values()}
        prefix = f"/payments/{each.settings.suffix}/"
        assert names == {
            prefix + key for key in PUBLISHED | {"webhook_secret", "environment/profile"}
        }

    def test_every_parameter_but_the_profile_record_is_encrypted_with_the_cmk(self, each):
        for parameter in each.resources(SsmParameter.TF_RESOURCE_TYPE).values():
            if parameter["name"].endswith("/environment/profile"):
                # Read by Terraform at plan time, by a role that may not use the key.
                assert (parameter["type"], parameter["value"]) == ("String", each.profile.name)
                continue
            assert parameter["type"] == "SecureString"
            assert "aws_kms_key" in parameter["key_id"]

    def test_an_apply_with_another_profile_than_the_recorded_one_is_refused_at_plan(self, each):
        paths = [d["path"] for d in each.doc["data"]["aws_ssm_parameters_by_path"].values()]
        assert f"/payments/{each.settings.suffix}/environment" in paths
        record = next(
            p
            for p in each.resources(SsmParameter.TF_RESOURCE_TYPE).values()
            if p["name"].endswith("/environment/profile")
        )
        [check] = record["lifecycle"]["precondition"]
        name = each.profile.name
        assert check["condition"].startswith(
            "${alltrue([for v in data.aws_ssm_parameters_by_path.config_recorded_"
        )
        assert check["condition"].endswith(f'.values : v == "{name}"])}}')
        assert f"ENVIRONMENT={name} is not the profile" in check["error_message"]
        assert f"ALLOW_PROFILE_CHANGE={name}" in check["error_message"]


def test_allow_profile_change_naming_the_profile_lifts_the_refusal(build_dir):
    settings = Settings.from_env({"ENVIRONMENT_SUFFIX": "moving", "ENVIRONMENT": "dev",
                                  "ALLOW_PROFILE_CHANGE": "dev"})  # fmt: skip
    stack = PaymentsStack(CdktfTesting.app(), STACK_NAME, settings=settings, build_dir=build_dir)
    doc = json.loads(CdktfTesting.synth(stack))
    [record] = [
        p
        for p in doc["resource"][SsmParameter.TF_RESOURCE_TYPE].values()
        if p["name"] == "/payments/moving/environment/profile"
    ]
    assert record["value"] == "dev" and "lifecycle" not in record
