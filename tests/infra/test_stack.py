"""Cross-cutting properties: names, tags, outputs, backend, provider."""

from __future__ import annotations

import json
import re

from cdktf import TerraformStack
from cdktf import Testing as CdktfTesting

from lib.settings import Settings
from lib.terraform import aws_provider, configure_backend

NAME_ATTRIBUTES = (
    "name", "function_name", "bucket", "alarm_name", "dashboard_name", "layer_name", "stage_name",
)  # fmt: skip
# Names that live inside the REST API (its models and validator) or a function (its alias), not
# in the account.
API_SCOPED = {"aws_api_gateway_model", "aws_api_gateway_request_validator", "aws_lambda_alias"}
SIX_TAGS = {"Environment", "Service", "Owner", "CostCenter", "DataClassification", "ManagedBy"}
OUTPUTS = {
    "api_url", "api_key_id", "batch_bucket_name", "payments_table_name",
    "processing_status_table_name", "audit_log_table_name", "processing_queue_url", "dlq_url",
    "payment_events_topic_arn", "alarms_topic_arn", "state_machine_arn", "dashboard_name",
    "api_key_value", "api_id", "stage_name", "payment_events_subscriber_queue_url",
    "audit_archive_bucket_name",
}  # fmt: skip


class TestNames:
    def test_every_resource_name_carries_the_suffix(self, each):
        suffix = re.compile(rf"(^|[-/_]){re.escape(each.settings.suffix)}($|[-/])")
        checked = 0
        for resource_type, resources in each.doc["resource"].items():
            if resource_type in API_SCOPED:
                continue
            for id_, resource in resources.items():
                values = [resource[a] for a in NAME_ATTRIBUTES if isinstance(resource.get(a), str)]
                values += (
                    [resource.get("tags", {}).get("Name")]
                    if resource.get("tags", {}).get("Name")
                    else []
                )
                for value in values:
                    if value.startswith("${"):
                        continue  # a reference to another resource's (checked) name
                    assert suffix.search(value), f"{resource_type}.{id_}: {value!r}"
                    checked += 1
        assert checked > 40


class TestTags:
    def test_provider_tags_every_resource_with_the_six_tags(self, each):
        (provider,) = each.doc["provider"]["aws"]
        (default_tags,) = provider["default_tags"]
        assert default_tags["tags"] == each.settings.default_tags()
        assert set(default_tags["tags"]) == SIX_TAGS
        assert default_tags["tags"]["Environment"] == each.profile.name
        assert "ignore_tags" not in provider

    def test_no_resource_overrides_the_six_tags(self, each):
        for resources in each.doc["resource"].values():
            for resource in resources.values():
                assert not SIX_TAGS & set(resource.get("tags", {}))
                assert "tags_all" not in resource


class TestOutputs:
    def test_outputs_of_the_contract(self, each):
        assert set(each.doc["output"]) == OUTPUTS

    def test_only_the_api_key_value_is_sensitive(self, each):
        sensitive = {name for name, output in each.doc["output"].items() if output.get("sensitive")}
        assert sensitive == {"api_key_value"}


class TestBackend:
    def test_s3_state_per_suffix_with_encryption_and_native_locking(self, production):
        backend = production.doc["terraform"]["backend"]["s3"]
        assert backend == {
            "bucket": "ci-state-bucket",
            "key": f"payments/{production.settings.suffix}/terraform.tfstate",
            "region": "eu-west-1",
            "encrypt": True,
            "use_lockfile": True,
        }
        assert production.stack.backend_notice is None

    def test_local_state_without_a_bucket_is_said_aloud(self, dev):
        assert dev.doc["terraform"]["backend"] == {"local": {"path": "terraform.payments.tfstate"}}
        assert "TERRAFORM_STATE_BUCKET" in dev.stack.backend_notice
        assert "\n" not in dev.stack.backend_notice

    def test_terraform_version_supports_s3_native_locking(self, each):
        assert each.doc["terraform"]["required_version"] == ">= 1.10"


class TestLocalCloudProvider:
    def _synth(self, env: dict[str, str]) -> dict:
        stack = TerraformStack(CdktfTesting.app(), "probe")
        settings = Settings.from_env(env)
        aws_provider(stack, settings)
        configure_backend(stack, settings, key=settings.state.key)
        return json.loads(CdktfTesting.synth(stack))

    def test_local_endpoint_switches_to_path_style_and_skips_account_checks(self):
        doc = self._synth(
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
                "TERRAFORM_STATE_BUCKET": "local-state",
                "AWS_REGION": "us-east-1",
            }
        )
        (provider,) = doc["provider"]["aws"]
        assert provider["s3_use_path_style"] is True
        assert provider["skip_credentials_validation"] is True
        assert "endpoints" not in provider, "AWS_ENDPOINT_URL reaches the provider by itself"
        assert doc["terraform"]["backend"]["s3"]["use_path_style"] is True

    def test_real_aws_keeps_the_providers_defaults(self, production):
        (provider,) = production.doc["provider"]["aws"]
        assert not {
            "s3_use_path_style",
            "skip_credentials_validation",
            "skip_metadata_api_check",
        } & set(provider)
