"""The batch state machine: type, logging, tracing and its role."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.sfn_state_machine import SfnStateMachine

from lib.functions import BATCH_TASKS, FUNCTIONS
from lib.settings import (
    DEFAULT_QUOTAS,
    PROFILES,
    TABLE_MAX_WRITE_UNITS,
    ConfigError,
    validate_quotas,
)
from lib.workflow_definition import batch_workflow_definition


def all_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, those inside a Map's ItemProcessor included."""
    for name, state in states.items():
        yield name, state
        if state["Type"] == "Map":
            yield from all_states(state["ItemProcessor"]["States"])


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
        tasks = [s for _, s in all_states(self._definition(each)["States"]) if s["Type"] == "Task"]
        # Register, ProcessChunk, Finalize; failure path: CurrentVersion, MarkFailed, CheckFailed
        assert len(tasks) == 6
        for task in tasks:
            assert task["Resource"].startswith("arn:${data.aws_partition.account_partition_")
            assert ":states:::" in task["Resource"]
        assert "arn:aws:" not in each.one(SfnStateMachine.TF_RESOURCE_TYPE)["definition"]

    def test_every_task_has_a_timeout_below_the_workflows(self, each):
        definition = self._definition(each)
        for name, state in all_states(definition["States"]):
            if state["Type"] == "Task":
                assert 0 < state["TimeoutSeconds"] < definition["TimeoutSeconds"], name

    def test_lambda_tasks_outlast_the_functions_own_timeout(self, each):
        lambda_tasks = [
            state
            for _, state in all_states(self._definition(each)["States"])
            if state["Type"] == "Task" and ":lambda:invoke" in state["Resource"]
        ]
        assert len(lambda_tasks) == 3  # Register, ProcessChunk, Finalize
        for state in lambda_tasks:
            assert state["TimeoutSeconds"] > FUNCTIONS[BATCH_TASKS].timeout

    def test_chunks_run_in_an_inline_map_at_the_profiles_concurrency(self, each):
        states = self._definition(each)["States"]
        assert states["Registered"]["Default"] == "Chunks"
        chunks = states["Chunks"]
        assert chunks["Type"] == "Map"
        assert chunks["ItemsPath"] == "$.chunks"
        assert chunks["MaxConcurrency"] == each.profile.batch_chunk_concurrency
        # Inline: moto runs it, and a Distributed Map's child executions it does not.
        assert chunks["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
        (name, task), *others = chunks["ItemProcessor"]["States"].items()
        assert (name, others, task["End"]) == ("ProcessChunk", [], True)
        assert task["Parameters"]["Payload"] == {"task": "process_chunk", "state.$": "$"}
        assert (chunks["Next"], chunks["ResultPath"]) == ("Finalize", None)

    def test_each_chunk_retries_what_every_task_retries_and_a_failed_chunk_fails_the_batch(
        self, each
    ):
        states = self._definition(each)["States"]
        chunk = states["Chunks"]["ItemProcessor"]["States"]["ProcessChunk"]
        assert chunk["Retry"] == states["Register"]["Retry"] == states["Finalize"]["Retry"]
        (retry,) = chunk["Retry"]
        for error in ("TransientError", "Runtime.ExitError", "Sandbox.Timedout",
                      "ReadTimeoutError", "Lambda.TooManyRequestsException"):  # fmt: skip
            assert error in retry["ErrorEquals"]
        assert "States.ALL" not in retry["ErrorEquals"]
        # An iteration's Catch could only lead inside the iteration: the Map's leads out.
        assert "Catch" not in chunk
        assert states["Chunks"]["Catch"] == states["Register"]["Catch"]
        assert states["Chunks"]["Catch"][0]["Next"] == "CurrentVersion"

    def test_an_iteration_gets_the_run_and_its_own_chunk_not_the_whole_plan(self, each):
        selector = self._definition(each)["States"]["Chunks"]["ItemSelector"]
        assert selector == {
            "batch_id.$": "$.batch_id",
            "run.$": "$.run",
            "bucket.$": "$.bucket",
            "key.$": "$.key",
            "version_id.$": "$.version_id",
            "columns.$": "$.columns",
            "chunk.$": "$$.Map.Item.Value",
        }

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


class TestChunkConcurrency:
    def test_production_runs_more_chunks_at_once_than_dev_and_staging(self):
        production = PROFILES["production"].batch_chunk_concurrency
        assert production > PROFILES["dev"].batch_chunk_concurrency
        assert production > PROFILES["staging"].batch_chunk_concurrency

    @pytest.mark.parametrize("name", sorted(PROFILES))
    def test_the_batch_tasks_reservation_holds_a_files_chunks_and_one_more_task(self, name):
        profile = PROFILES[name]
        assert profile.concurrency.batch_tasks >= profile.batch_chunk_concurrency + 1
        validate_quotas(profile, DEFAULT_QUOTAS)

    @pytest.mark.parametrize("name", sorted(PROFILES))
    def test_a_profile_whose_chunks_fill_the_batch_tasks_reservation_is_refused(self, name):
        profile = PROFILES[name]
        crowded = dataclasses.replace(
            profile, batch_chunk_concurrency=profile.concurrency.batch_tasks
        )
        with pytest.raises(ConfigError, match="reserve at least one more than the chunks"):
            validate_quotas(crowded, DEFAULT_QUOTAS)

    @pytest.mark.parametrize("name", sorted(PROFILES))
    def test_a_profile_without_chunks_is_refused(self, name):
        with pytest.raises(ConfigError, match="must be at least 1"):
            validate_quotas(
                dataclasses.replace(PROFILES[name], batch_chunk_concurrency=0), DEFAULT_QUOTAS
            )

    def test_the_definition_refuses_a_concurrency_below_one(self):
        with pytest.raises(ValueError, match="at least 1"):
            batch_workflow_definition(
                tasks_function_arn="fn", status_table_name="s", audit_table_name="a",
                chunk_concurrency=0,
            )  # fmt: skip

    def test_production_chunks_at_full_width_write_what_one_table_serves_at_most(self):
        production = PROFILES["production"]
        assert production.batch_write_units == TABLE_MAX_WRITE_UNITS


class TestFailurePath:
    definition = batch_workflow_definition(
        tasks_function_arn="fn", status_table_name="status", audit_table_name="audit"
    )

    def test_the_failed_status_and_its_audit_entry_are_one_transaction(self):
        mark = self.definition["States"]["MarkFailed"]
        assert mark["Resource"] == "arn:aws:states:::aws-sdk:dynamodb:transactWriteItems"
        update, put = mark["Parameters"]["TransactItems"]
        assert update["Update"]["TableName"] == "status"
        assert ":failed" in update["Update"]["UpdateExpression"]
        assert put["Put"]["TableName"] == "audit"
        assert put["Put"]["ConditionExpression"] == "attribute_not_exists(entity_id)"
        assert mark["Next"] == "Failed"

    def test_the_failure_is_written_one_version_above_the_summary_read_just_before(self):
        states = self.definition["States"]
        read = states["CurrentVersion"]
        assert read["Resource"] == "arn:aws:states:::dynamodb:getItem"
        assert read["Parameters"]["ConsistentRead"] is True
        choice = states[read["Next"]]
        [present] = choice["Choices"]
        assert present["Variable"] == "$.current.Item.version.N" and present["IsPresent"]
        bump, first = states[present["Next"]], states[choice["Default"]]
        assert bump["Parameters"] == {
            "value.$": "States.MathAdd(States.StringToJson($.current.Item.version.N), 1)"
        }
        assert first["Result"] == {"value": 1}
        assert bump["ResultPath"] == first["ResultPath"] == "$.next_version"
        assert bump["Next"] == first["Next"] == "MarkFailed"
        update, put = states["MarkFailed"]["Parameters"]["TransactItems"]
        version = {"N.$": "States.Format('{}', $.next_version.value)"}
        assert update["Update"]["ExpressionAttributeValues"][":version"] == version
        assert "#version = :version" in update["Update"]["UpdateExpression"]
        assert put["Put"]["Item"]["version"] == version
        # Taking over an older upload's summary only while the version read is still the top.
        assert "#version < :version" in update["Update"]["ConditionExpression"]

    def test_no_other_state_writes_the_status_or_the_audit_log(self):
        writers = [
            name
            for name, state in all_states(self.definition["States"])
            if state["Type"] == "Task" and ":dynamodb:" in state["Resource"]
            and not state["Resource"].endswith(":getItem")
        ]  # fmt: skip
        assert writers == ["MarkFailed"]

    def test_a_cancelled_failure_write_is_read_back_before_the_execution_ends(self):
        states = self.definition["States"]
        [caught] = states["MarkFailed"]["Catch"]
        assert caught["ErrorEquals"] == ["DynamoDb.TransactionCanceledException"]
        assert states[caught["Next"]]["Next"] == "CheckFailed"
        assert states["CheckFailed"]["Parameters"]["ConsistentRead"] is True
        choice = states[states["CheckFailed"]["Next"]]
        assert {c["Next"] for c in choice["Choices"]} | {choice["Default"]} == {
            "Failed",
            "Succeeded",
        }
