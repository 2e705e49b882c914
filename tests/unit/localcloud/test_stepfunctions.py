"""Step Functions on the patched moto (``localcloud/services/stepfunctions.py``): the planning calls
answered, unnamed executions named, executions run."""

from __future__ import annotations

import json
import uuid

import pytest
from localcloud_support import ACCOUNT_ID, wait_for

pytestmark = pytest.mark.xdist_group("localcloud-stepfunctions")


PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


class TestStepFunctions:
    def test_validate_accepts_a_definition_with_states(self, cloud):
        answer = cloud.client("stepfunctions").validate_state_machine_definition(
            definition=PASS_MACHINE
        )
        assert (answer["result"], answer["diagnostics"]) == ("OK", [])

    @pytest.mark.parametrize("definition", ["not json", "[]", '{"StartAt": "A"}'])
    def test_validate_rejects_anything_else(self, cloud, definition):
        answer = cloud.client("stepfunctions").validate_state_machine_definition(
            definition=definition
        )
        assert answer["result"] == "FAIL"
        assert [d["code"] for d in answer["diagnostics"]] == ["SCHEMA_VALIDATION_FAILED"]

    def test_list_versions_answers_newest_first(self, cloud):
        sfn = cloud.client("stepfunctions")
        role = f"arn:aws:iam::{ACCOUNT_ID}:role/sfn"
        unpublished = sfn.create_state_machine(
            name="unpublished", definition=PASS_MACHINE, roleArn=role
        )["stateMachineArn"]
        assert (
            sfn.list_state_machine_versions(stateMachineArn=unpublished)["stateMachineVersions"]
            == []
        )

        arn = sfn.create_state_machine(
            name="published", definition=PASS_MACHINE, roleArn=role, publish=True
        )["stateMachineArn"]
        sfn.update_state_machine(stateMachineArn=arn, definition=PASS_MACHINE, publish=True)
        versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
        assert [v["stateMachineVersionArn"] for v in versions] == [f"{arn}:2", f"{arn}:1"]

    def test_unnamed_execution_gets_a_uuid_and_runs(self, cloud):
        sfn = cloud.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="runs", definition=PASS_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sfn"
        )["stateMachineArn"]
        first = sfn.start_execution(stateMachineArn=arn, input='{"a": 1}')["executionArn"]
        second = sfn.start_execution(stateMachineArn=arn)["executionArn"]
        assert first != second
        described = wait_for(
            lambda: (d := sfn.describe_execution(executionArn=first))["status"] != "RUNNING" and d
        )
        uuid.UUID(described["name"])
        assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"a": 1})

    def test_a_service_integration_calls_this_server_at_its_loopback_address(self, cloud):
        """Stock moto's interpreter calls ``localhost:$MOTO_PORT``, which may be ``::1``."""
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_sqs,
        )

        client = state_task_service_sqs.boto_client_for("us-east-1", "sqs")
        assert client.meta.endpoint_url == f"http://127.0.0.1:{cloud.port}"
        url, _ = cloud.create_queue("from-a-workflow")
        send = {
            "StartAt": "Send",
            "States": {
                "Send": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage",
                    "Parameters": {"QueueUrl": url, "MessageBody": "sent by the workflow"},
                    "End": True,
                }
            },
        }
        sfn = cloud.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="sends", definition=json.dumps(send), roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sfn"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
        described = wait_for(
            lambda: (
                (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d
            )
        )
        assert described["status"] == "SUCCEEDED"
        messages = cloud.client("sqs").receive_message(QueueUrl=url)["Messages"]
        assert [m["Body"] for m in messages] == ["sent by the workflow"]
