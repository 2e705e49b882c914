"""Amazon States Language of the batch workflow (owned by the runtime; see docs/CONTRACT.md).

Pure Python, no cdktf import: the stack json-encodes the dict and the runtime tests execute the
very same definition in moto. Only states both Step Functions and moto's interpreter run are used
(Task with lambda:invoke / dynamodb:getItem / the AWS SDK's dynamodb:transactWriteItems, Choice,
Pass with the intrinsics States.Format, States.MathAdd and States.StringToJson, inline Map,
Succeed, Fail, Retry/Catch).

    Register (+ plan) -> [superseded or rejected?] -> Chunks: Map(ProcessChunk), at most
        MaxConcurrency at once -> Finalize -> Succeeded
        platform failure -> CurrentVersion (reads the summary's version) -> MarkFailed (one
                            DynamoDB transaction: status + audit entry, one version up) -> Failed
                            (cancelled: FailedRun, CheckFailed reads the summary -> Failed or
                             Succeeded)

Register plans the file (each chunk's byte range, first line, and its duplicate lines, stored in
DynamoDB) and returns the chunks as small Map items; each iteration processes one chunk with the
tasks' Retry, and a chunk that still fails fails the Map, which the Map's Catch sends to
MarkFailed (an iteration's Catch could only lead to a state inside the iteration).

Nothing here publishes: every outcome is an audit entry (written by the tasks, or by MarkFailed)
and the audit log's outbox publishes ``batch.completed`` / ``batch.failed``. A file the contract
rejects (no header) and a run superseded by a newer upload are successful executions: only the
platform failing fails an execution (and trips the ExecutionsFailed alarm).
"""

from __future__ import annotations

from typing import Any

# Errors worth retrying: Lambda's own transient failures, the runtime's TransientError
# (DynamoDB/SQS throttling that outlived the SDK's retries), a call that timed out or lost its
# connection after the SDK's retries (its write may have committed: every task is idempotent),
# and throttling of the workflow's own DynamoDB steps.
_TRANSIENT = [
    "TransientError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "EndpointConnectionError",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.Unknown",
    # The function's environment died or ran out of time mid-task: the task is idempotent.
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.InternalServerErrorException",
]
# Longer than any file takes (a 1M-row file: ~7-17 min); the sweeper marks a run still
# PROCESSING past it as TIMED_OUT, since a timed-out execution runs no failure path.
WORKFLOW_TIMEOUT_SECONDS = 2 * 60 * 60
PROCESSING_ERROR = "PROCESSING_ERROR"
PROCESSING_ERROR_REASON = (
    "The batch could not be processed because of a platform error; operators have the details "
    "in the workflow's execution history. Upload the file again to retry."
)
_RETRY = [{"ErrorEquals": _TRANSIENT, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0}]
_CATCH = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CurrentVersion"}]


def _integration(partition: str, service: str, action: str) -> str:
    """A service integration's ARN: ``arn:<partition>:states:::<service>:<action>`` (GovCloud and
    the ISO regions have their own partitions; ``aws`` everywhere else)."""
    return f"arn:{partition}:states:::{service}:{action}"


# A DynamoDB step answers in milliseconds; one that hangs is failed (and caught) after a minute
# instead of holding the execution until the workflow's two-hour timeout.
DYNAMODB_TASK_TIMEOUT_SECONDS = 60
# Default for the Lambda tasks when the stack passes none: the batch-tasks function's timeout
# (300 s) plus a minute, so Lambda's own timeout error surfaces first.
LAMBDA_TASK_TIMEOUT_SECONDS = 360


# Chunks of one file processed at once when the stack passes no profile value (the profiles
# set theirs: lib/settings.py, ``Profile.batch_chunk_concurrency``).
DEFAULT_CHUNK_CONCURRENCY = 4
# What each Map iteration gets: the run's fields and its chunk (index, offset, end, line, rows,
# duplicates), never the whole chunk list.
_CHUNK_INPUT = {
    "batch_id.$": "$.batch_id",
    "run.$": "$.run",
    "bucket.$": "$.bucket",
    "key.$": "$.key",
    "version_id.$": "$.version_id",
    "columns.$": "$.columns",
    "chunk.$": "$$.Map.Item.Value",
}


def _invoker(function_arn: str, partition: str, timeout: int):
    def invoke(task: str, next_state: str | None, *, catch: bool = True) -> dict[str, Any]:
        return _invoke(function_arn, task, next_state, partition, timeout, catch=catch)

    return invoke


def _invoke(
    function_arn: str,
    task: str,
    next_state: str | None,
    partition: str,
    timeout: int,
    *,
    catch: bool = True,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": _integration(partition, "lambda", "invoke"),
        "TimeoutSeconds": timeout,
        "Parameters": {"FunctionName": function_arn, "Payload": {"task": task, "state.$": "$"}},
        "OutputPath": "$.Payload",
        "Retry": _RETRY,
    }
    if catch:
        state["Catch"] = _CATCH
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


_SUMMARY_KEY = {
    "pk": {"S.$": "States.Format('BATCH#{}', $$.Execution.Input.batch_id)"},
    "sk": {"S": "SUMMARY"},
}
# Errors of the AWS SDK integration are named ``DynamoDb.<Exception>`` (the optimized
# integrations' ``DynamoDB.``): its throttling and server errors, retried like the others.
_SDK_TRANSACTION_CANCELLED = "DynamoDb.TransactionCanceledException"
_SDK_RETRY = [
    {
        "ErrorEquals": [
            "DynamoDb.ProvisionedThroughputExceededException",
            "DynamoDb.ThrottlingException",
            "DynamoDb.RequestLimitExceededException",
            "DynamoDb.InternalServerErrorException",
            "DynamoDb.TransactionInProgressException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
    }
]
_CANCELLED_RETRY = {
    "ErrorEquals": [_SDK_TRANSACTION_CANCELLED],
    "IntervalSeconds": 1,
    "MaxAttempts": 3,
    "BackoffRate": 2.0,
}


# The batch's version after the failure, one above the summary's (CurrentVersion, NextVersion or
# FirstVersion put it at ``$.next_version``): the FAILED status and its batch.failed event carry it.
_NEXT_VERSION = {"N.$": "States.Format('{}', $.next_version.value)"}


def _mark_failed_update(status_table_name: str) -> dict[str, Any]:
    """The summary's FAILED status, leaving the running-index: this run's summary while it runs,
    or, when Register failed before writing one, no summary yet or an older upload's (a newer
    upload takes over). Clients see a stable code and a plain sentence; the error's cause (a
    stack trace, paths, ARNs) stays in the execution history and the logs."""
    return {
        "TableName": status_table_name,
        "Key": _SUMMARY_KEY,
        "UpdateExpression": (
            "SET #status = :failed, reason_code = :code, #reason = :reason, "
            "#error = :error, #run = :run, version_id = :run, batch_id = :batch_id, "
            "sequencer = :sequencer, #version = :version, updated_at = :now, "
            "finished_at = :now REMOVE running"
        ),
        # Taking over an older upload's summary also needs the version read just before to be
        # the highest still: an older run that ended in between has written the same number.
        "ConditionExpression": (
            "attribute_not_exists(pk) OR (#run = :run AND #status = :processing) OR "
            "(#run <> :run AND (attribute_not_exists(sequencer) OR "
            "sequencer < :sequencer) AND (attribute_not_exists(#version) OR "
            "#version < :version))"
        ),
        "ExpressionAttributeNames": {
            "#status": "status",
            "#reason": "reason",
            "#error": "error",
            "#run": "run",
            "#version": "version",
        },
        "ExpressionAttributeValues": {
            ":failed": {"S": "FAILED"},
            ":processing": {"S": "PROCESSING"},
            ":code": {"S": PROCESSING_ERROR},
            ":reason": {"S": PROCESSING_ERROR_REASON},
            ":error": {"S.$": "$.error.Error"},
            ":run": {"S.$": "$$.Execution.Input.version_id"},
            ":sequencer": {"S.$": "$$.Execution.Input.sequencer"},
            ":batch_id": {"S.$": "$$.Execution.Input.batch_id"},
            ":version": _NEXT_VERSION,
            ":now": {"S.$": "$$.State.EnteredTime"},
        },
    }


def _failure_audit_put(audit_table_name: str) -> dict[str, Any]:
    """The audit entry of the run's failure (the outbox record of batch.failed), keyed per run:
    insert-only, so a transaction that already committed cannot write it twice."""
    return {
        "TableName": audit_table_name,
        "Item": {
            "entity_id": {"S.$": "States.Format('BATCH#{}', $$.Execution.Input.batch_id)"},
            "sk": {"S.$": "States.Format('{}#FAILED', $$.Execution.Input.version_id)"},
            "event": {"S": "batch.failed"},
            "run": {"S.$": "$$.Execution.Input.version_id"},
            "at": {"S.$": "$$.State.EnteredTime"},
            "reason_code": {"S": PROCESSING_ERROR},
            "reason": {"S": PROCESSING_ERROR_REASON},
            "error": {"S.$": "$.error.Error"},
            "version": _NEXT_VERSION,
        },
        "ConditionExpression": "attribute_not_exists(entity_id)",
    }


def batch_workflow_definition(
    *,
    tasks_function_arn: str,
    status_table_name: str,
    audit_table_name: str,
    partition: str = "aws",
    task_timeout_seconds: int = LAMBDA_TASK_TIMEOUT_SECONDS,
    chunk_concurrency: int = DEFAULT_CHUNK_CONCURRENCY,
) -> dict[str, Any]:
    """The state machine definition as a dict (the stack serializes it with the partition of
    the account it deploys into and the profile's chunk concurrency)."""
    if chunk_concurrency < 1:
        raise ValueError(f"chunk_concurrency must be at least 1, not {chunk_concurrency}")
    invoke = _invoker(tasks_function_arn, partition, task_timeout_seconds)
    return {
        "Comment": "Process one uploaded CSV batch file: plan its chunks, process them in parallel",
        "StartAt": "Register",
        "TimeoutSeconds": WORKFLOW_TIMEOUT_SECONDS,
        "States": {
            "Register": invoke("register", "Registered"),
            # A superseded run or a rejected file is done (the task recorded the outcome).
            "Registered": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "Succeeded"}],
                "Default": "Chunks",
            },
            # Chunks finish in any order; each adds its own counts once (a marker item in the
            # same transaction). A superseded run's chunks return quietly and Finalize sees it.
            "Chunks": {
                "Type": "Map",
                "ItemsPath": "$.chunks",
                "ItemSelector": _CHUNK_INPUT,
                "MaxConcurrency": chunk_concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "ProcessChunk",
                    "States": {"ProcessChunk": invoke("process_chunk", None, catch=False)},
                },
                # The iterations' outputs are dropped: Finalize reads the counts from DynamoDB
                # and the state stays the size of the chunk list.
                "ResultPath": None,
                "Catch": _CATCH,
                "Next": "Finalize",
            },
            "Finalize": invoke("finalize", "Succeeded"),
            "Succeeded": {"Type": "Succeed"},
            # The batch record is written by the workflow itself, so a failure is recorded even
            # when the Lambda function is what failed: the FAILED status and its audit entry (the
            # outbox record of batch.failed) in one transaction, so neither lands without the
            # other whatever fails in between (a throttled retry, a task timeout, the
            # execution's timeout). The run condition stops a superseded run from failing a
            # newer upload of the same batch_id.
            # The version MarkFailed writes: one above the summary's, 1 for a batch whose
            # first Register failed before writing one.
            "CurrentVersion": {
                "Type": "Task",
                "Resource": _integration(partition, "dynamodb", "getItem"),
                "TimeoutSeconds": DYNAMODB_TASK_TIMEOUT_SECONDS,
                "Parameters": {
                    "TableName": status_table_name,
                    "Key": _SUMMARY_KEY,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#version",
                    "ExpressionAttributeNames": {"#version": "version"},
                },
                "Retry": _RETRY,
                "ResultPath": "$.current",
                "Next": "Versioned",
            },
            "Versioned": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.current.Item.version.N",
                        "IsPresent": True,
                        "Next": "NextVersion",
                    }
                ],
                "Default": "FirstVersion",
            },
            "NextVersion": {
                "Type": "Pass",
                "Parameters": {
                    "value.$": "States.MathAdd(States.StringToJson($.current.Item.version.N), 1)"
                },
                "ResultPath": "$.next_version",
                "Next": "MarkFailed",
            },
            "FirstVersion": {
                "Type": "Pass",
                "Result": {"value": 1},
                "ResultPath": "$.next_version",
                "Next": "MarkFailed",
            },
            "MarkFailed": {
                "Type": "Task",
                "Resource": _integration(partition, "aws-sdk:dynamodb", "transactWriteItems"),
                "TimeoutSeconds": DYNAMODB_TASK_TIMEOUT_SECONDS,
                "Parameters": {
                    "TransactItems": [
                        {"Update": _mark_failed_update(status_table_name)},
                        {"Put": _failure_audit_put(audit_table_name)},
                    ]
                },
                # A cancelled transaction is retried a few times (a conflict with another
                # write of the summary clears at once), then read back: a failed condition
                # (superseded, already ended, or this very transaction committed before its
                # answer was lost) is what CheckFailed tells apart.
                "Retry": [_CANCELLED_RETRY, *_SDK_RETRY],
                "Catch": [
                    {
                        "ErrorEquals": [_SDK_TRANSACTION_CANCELLED],
                        "ResultPath": None,
                        "Next": "FailedRun",
                    }
                ],
                "ResultPath": None,
                "Next": "Failed",
            },
            # The run and its upload order where the Choice can compare them (its paths are the
            # state's, not the execution's input).
            "FailedRun": {
                "Type": "Pass",
                "Parameters": {
                    "run.$": "$$.Execution.Input.version_id",
                    "sequencer.$": "$$.Execution.Input.sequencer",
                },
                "ResultPath": "$.failed_run",
                "Next": "CheckFailed",
            },
            "CheckFailed": {
                "Type": "Task",
                "Resource": _integration(partition, "dynamodb", "getItem"),
                "TimeoutSeconds": DYNAMODB_TASK_TIMEOUT_SECONDS,
                "Parameters": {
                    "TableName": status_table_name,
                    "Key": _SUMMARY_KEY,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#run, #status, sequencer",
                    "ExpressionAttributeNames": {"#run": "run", "#status": "status"},
                },
                "Retry": _RETRY,
                "ResultPath": "$.summary",
                "Next": "FailedOrSuperseded",
            },
            # What the summary says once MarkFailed could not write: this run FAILED (its own
            # transaction, or the sweeper's TIMED_OUT) fails the execution; a run that completed
            # meanwhile, or a newer upload's run, leaves nothing to mark. A run still in
            # progress, no summary at all, or an older upload's summary mean the transaction
            # never got through: the execution fails unrecorded, and the sweeper times a
            # registered run out (its own status change and audit entry, one transaction).
            "FailedOrSuperseded": {
                "Type": "Choice",
                "Choices": [
                    {"Not": {"Variable": "$.summary.Item", "IsPresent": True}, "Next": "Failed"},
                    {
                        "And": [
                            {
                                "Variable": "$.summary.Item.run.S",
                                "StringEqualsPath": "$.failed_run.run",
                            },
                            {"Variable": "$.summary.Item.status.S", "StringEquals": "COMPLETED"},
                        ],
                        "Next": "Succeeded",
                    },
                    {
                        "Variable": "$.summary.Item.run.S",
                        "StringEqualsPath": "$.failed_run.run",
                        "Next": "Failed",
                    },
                    {
                        "Or": [
                            {"Not": {"Variable": "$.summary.Item.sequencer", "IsPresent": True}},
                            {
                                "Variable": "$.summary.Item.sequencer.S",
                                "StringLessThanPath": "$.failed_run.sequencer",
                            },
                        ],
                        "Next": "Failed",
                    },
                ],
                "Default": "Succeeded",
            },
            "Failed": {
                "Type": "Fail",
                "Error": "BatchFailed",
                "Cause": "The batch failed; see the batch record and the batch.failed event",
            },
        },
    }
