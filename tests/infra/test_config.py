"""SSM parameters under /payments/<suffix>/."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter

PUBLISHED = {
    "api_url", "batch_bucket_name", "payments_table_name", "processing_status_table_name",
    "audit_log_table_name", "processing_queue_url", "payment_events_topic_arn", "state_machine_arn",
    "payment_events_subscriber_queue_url",
}  # fmt: skip


class TestConfig:
    def test_endpoints_and_names_are_published_under_the_environments_path(self, each):
        names = {p["name"] for p in each.resources(SsmParameter.TF_RESOURCE_TYPE).values()}
        prefix = f"/payments/{each.settings.suffix}/"
        assert names == {prefix + key for key in PUBLISHED | {"webhook_secret"}}

    def test_every_parameter_is_encrypted_with_the_cmk(self, each):
        for parameter in each.resources(SsmParameter.TF_RESOURCE_TYPE).values():
            assert parameter["type"] == "SecureString"
            assert "aws_kms_key" in parameter["key_id"]

    def test_webhook_secret_is_created_once_and_then_left_to_operators(self, each):
        secret = next(
            p
            for p in each.resources(SsmParameter.TF_RESOURCE_TYPE).values()
            if p["name"].endswith("/webhook_secret")
        )
        assert secret["lifecycle"] == {"ignore_changes": ["value"]}
        assert secret["value"] == "${uuid()}"
