"""The batch state machine: type, logging, tracing and its role."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.sfn_state_machine import SfnStateMachine


class TestWorkflow:
    def test_standard_state_machine_named_with_the_suffix(self, each):
        machine = each.one(SfnStateMachine.TF_RESOURCE_TYPE)
        assert machine["name"] == f"payments-batch-{each.settings.suffix}"
        assert machine["type"] == "STANDARD"
        assert json.loads(machine["definition"])["StartAt"]

    def test_logs_everything_to_an_encrypted_log_group(self, each):
        machine = each.one(SfnStateMachine.TF_RESOURCE_TYPE)
        assert machine["logging_configuration"]["level"] == "ALL"
        assert machine["logging_configuration"]["log_destination"].startswith(
            "${aws_cloudwatch_log_group.workflow_logs_"
        )
        group = each.one(CloudwatchLogGroup.TF_RESOURCE_TYPE, "workflow_logs")
        assert "aws_kms_key" in group["kms_key_id"]
        assert group["retention_in_days"] == each.profile.log_retention_days

    def test_tracing_is_on(self, each):
        assert each.has(
            SfnStateMachine.TF_RESOURCE_TYPE, {"tracing_configuration": {"enabled": True}}
        )

    def test_role_is_assumable_by_step_functions_of_this_account_only(self, each):
        role = each.one(IamRole.TF_RESOURCE_TYPE, "workflow_role")
        trust = each.data("aws_iam_policy_document")[role["assume_role_policy"].split(".")[2]]
        (statement,) = trust["statement"]
        assert statement["principals"] == [
            {"type": "Service", "identifiers": ["states.amazonaws.com"]}
        ]
        assert statement["condition"][0]["variable"] == "aws:SourceAccount"

    def test_role_may_invoke_batch_tasks_update_status_and_audit_failures_only(self, each):
        permissions = each.data("aws_iam_policy_document")
        document = next(
            v for k, v in permissions.items() if k.startswith("workflow_role-permissions")
        )
        scoped = {
            a: s["resources"]
            for s in document["statement"]
            for a in s["actions"]
            if s["resources"] != ["*"]
        }
        assert "functions_batch-tasks_" in scoped["lambda:InvokeFunction"][0]
        (table,) = scoped["dynamodb:UpdateItem"]
        assert table.startswith("${aws_dynamodb_table.tables_processing-status_")
        (audit,) = scoped["dynamodb:PutItem"]
        assert audit.startswith("${aws_dynamodb_table.tables_audit-log_")
        # The outbox publishes batch.completed / batch.failed; the workflow publishes nothing.
        assert not any(a.startswith("sns:") for a in scoped)

    def test_state_machine_waits_for_its_role_policy(self, each):
        # Step Functions checks log-delivery permissions when the machine is created.
        machine = each.one(SfnStateMachine.TF_RESOURCE_TYPE)
        assert any(
            d.startswith("aws_iam_role_policy.workflow_role-policy") for d in machine["depends_on"]
        )
