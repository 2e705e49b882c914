"""The batch state machine: type, logging, tracing and its role."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.sfn_state_machine import SfnStateMachine

from lib.functions import BATCH_TASKS, FUNCTIONS
from lib.workflow_definition import batch_workflow_definition


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


class TestDefinition:
    def _definition(self, synth) -> dict:
        return json.loads(synth.one(SfnStateMachine.TF_RESOURCE_TYPE)["definition"])

    def test_every_integration_arn_is_built_from_the_partition(self, each):
        tasks = [s for s in self._definition(each)["States"].values() if s["Type"] == "Task"]
        assert len(tasks) == 5
        for task in tasks:
            assert task["Resource"].startswith("arn:${data.aws_partition.account_partition_")
            assert ":states:::" in task["Resource"]
        assert "arn:aws:" not in each.one(SfnStateMachine.TF_RESOURCE_TYPE)["definition"]

    def test_every_task_has_a_timeout_below_the_workflows(self, each):
        definition = self._definition(each)
        for name, state in definition["States"].items():
            if state["Type"] == "Task":
                assert 0 < state["TimeoutSeconds"] < definition["TimeoutSeconds"], name

    def test_lambda_tasks_outlast_the_functions_own_timeout(self, each):
        for state in self._definition(each)["States"].values():
            if state["Type"] == "Task" and ":lambda:invoke" in state["Resource"]:
                assert state["TimeoutSeconds"] > FUNCTIONS[BATCH_TASKS].timeout

    def test_the_definition_defaults_to_the_commercial_partition(self):
        definition = batch_workflow_definition(
            tasks_function_arn="fn", status_table_name="s", audit_table_name="a"
        )
        assert definition["States"]["Register"]["Resource"] == "arn:aws:states:::lambda:invoke"
        gov = batch_workflow_definition(
            tasks_function_arn="fn", status_table_name="s", audit_table_name="a",
            partition="aws-us-gov",
        )  # fmt: skip
        assert gov["States"]["MarkFailed"]["Resource"].startswith("arn:aws-us-gov:states:::")
