"""The batch state machine (STANDARD), its role, logging and tracing.

The ASL itself belongs to the runtime side (``lib/workflow_definition.py``, docs/CONTRACT.md);
this construct only deploys it.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from cdktf_cdktf_provider_aws.sfn_state_machine import (
    SfnStateMachine,
    SfnStateMachineLoggingConfiguration,
    SfnStateMachineTracingConfiguration,
)
from constructs import Construct

from lib.iam import (
    LOG_DELIVERY_ACTIONS,
    XRAY_SAMPLING_ACTIONS,
    XRAY_WRITE_ACTIONS,
    AwsAccount,
    service_role,
    statement,
)
from lib.logs import encrypted_log_group, workflow_log_group_name
from lib.settings import Settings

STATE_MACHINE = "batch"
# A Lambda task waits a minute longer than the function may run, so the function's own timeout
# error (retried or caught) surfaces before the task's.
TASK_TIMEOUT_MARGIN_SECONDS = 60


def state_machine_arn(settings: Settings, account: AwsAccount) -> str:
    """The ARN is known from the name, so the functions can be wired before the machine exists."""
    return account.arn("states", f"stateMachine:{settings.name(STATE_MACHINE)}")


def _definition(**kwargs: Any) -> dict[str, Any]:
    try:
        module = importlib.import_module("lib.workflow_definition")
    except ModuleNotFoundError as error:
        if error.name != "lib.workflow_definition":
            raise
        # The runtime side has not delivered the workflow yet: deploy a machine that fails
        # loudly rather than one that pretends to process batches.
        return {
            "Comment": "lib/workflow_definition.py is not built yet",
            "StartAt": "NotBuiltYet",
            "States": {
                "NotBuiltYet": {
                    "Type": "Fail",
                    "Error": "NotImplemented",
                    "Cause": "The batch workflow definition is not built yet",
                }
            },
        }
    return module.batch_workflow_definition(**kwargs)


class Workflow(Construct):
    """The batch workflow: invoke batch-tasks; on a platform failure mark the batch and audit it
    (the audit log's outbox publishes ``batch.failed``; the workflow publishes nothing)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        kms_key_arn: str,
        tasks_function_arn: str,
        tasks_timeout: int,
        status_table_arn: str,
        status_table_name: str,
        audit_table_arn: str,
        audit_table_name: str,
    ) -> None:
        super().__init__(scope, id_)
        name = settings.name(STATE_MACHINE)
        self.log_group = encrypted_log_group(
            self,
            "logs",
            name=workflow_log_group_name(settings, STATE_MACHINE),
            settings=settings,
            kms_key_arn=kms_key_arn,
        )
        role = service_role(
            self,
            "role",
            name=name,
            service="states.amazonaws.com",
            account=account,
            source_account_condition=True,
            statements=[
                statement(
                    sid="InvokeBatchTasks",
                    actions=["lambda:InvokeFunction"],
                    resources=[tasks_function_arn, f"{tasks_function_arn}:*"],
                ),
                # The failure path: the FAILED status and its audit entry in one transaction
                # (authorised by its items' UpdateItem and PutItem), then a read of the summary
                # when the transaction was cancelled.
                statement(
                    sid="UpdateBatchStatus",
                    actions=["dynamodb:UpdateItem", "dynamodb:GetItem"],
                    resources=[status_table_arn],
                ),
                statement(
                    sid="AuditBatchFailure",
                    actions=["dynamodb:PutItem"],
                    resources=[audit_table_arn],
                ),
                statement(
                    sid="UseDataKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[kms_key_arn],
                ),
                # CloudWatch Logs vended delivery and X-Ray offer no resource-level permissions;
                # this is the policy AWS documents for Step Functions logging and tracing.
                statement(sid="LogDelivery", actions=LOG_DELIVERY_ACTIONS, resources=["*"]),
                statement(
                    sid="XRayTraces",
                    actions=(*XRAY_WRITE_ACTIONS, *XRAY_SAMPLING_ACTIONS),
                    resources=["*"],
                ),
            ],
        )
        definition = _definition(
            tasks_function_arn=tasks_function_arn,
            status_table_name=status_table_name,
            audit_table_name=audit_table_name,
            partition=account.partition,
            task_timeout_seconds=tasks_timeout + TASK_TIMEOUT_MARGIN_SECONDS,
            chunk_concurrency=settings.profile.batch_chunk_concurrency,
        )
        self.state_machine = SfnStateMachine(
            self,
            "state-machine",
            name=name,
            type="STANDARD",
            role_arn=role.arn,
            definition=json.dumps(definition, separators=(",", ":")),
            logging_configuration=SfnStateMachineLoggingConfiguration(
                level="ALL",
                include_execution_data=True,
                log_destination=f"{self.log_group.arn}:*",
            ),
            tracing_configuration=SfnStateMachineTracingConfiguration(enabled=True),
            depends_on=[role.policy],
        )
