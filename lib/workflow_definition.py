"""Amazon States Language of the batch workflow (owned by the runtime; see docs/CONTRACT.md).

Pure Python, no cdktf import: the stack json-encodes the dict and the runtime tests execute the
very same definition in moto. Only states both Step Functions and moto's interpreter run are used
(Task with lambda:invoke / dynamodb:updateItem / sns:publish, Choice, Succeed, Fail, Retry/Catch).

    Register -> ProcessChunk <-> MoreRows? -> Finalize -> PublishSummary -> Succeeded
        any failure -> MarkFailed (DynamoDB) -> PublishFailure (SNS) -> Failed
"""

from __future__ import annotations

from typing import Any

# Errors worth retrying: Lambda's own transient failures and the runtime's TransientError
# (DynamoDB/SQS throttling that outlived the SDK's retries). Every task is retry-safe.
_TRANSIENT = [
    "TransientError",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
]
_RETRY = [{"ErrorEquals": _TRANSIENT, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0}]
_CATCH = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MarkFailed"}]


def _invoke(function_arn: str, task: str, next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload": {"task": task, "state.$": "$"}},
        "OutputPath": "$.Payload",
        "Retry": _RETRY,
        "Catch": _CATCH,
        "Next": next_state,
    }


def batch_workflow_definition(
    *, tasks_function_arn: str, status_table_name: str, events_topic_arn: str
) -> dict[str, Any]:
    """The state machine definition as a dict (the stack serializes it)."""
    return {
        "Comment": "Process one uploaded CSV batch file chunk by chunk",
        "StartAt": "Register",
        "States": {
            "Register": _invoke(tasks_function_arn, "register", "ProcessChunk"),
            "ProcessChunk": _invoke(tasks_function_arn, "process_chunk", "MoreRows"),
            "MoreRows": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "Finalize"}],
                "Default": "ProcessChunk",
            },
            "Finalize": _invoke(tasks_function_arn, "finalize", "PublishSummary"),
            "PublishSummary": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": events_topic_arn,
                    "Message.$": "States.JsonToString($)",
                    "MessageAttributes": {
                        "event_type": {"DataType": "String", "StringValue": "batch.completed"}
                    },
                },
                "Retry": _RETRY,
                "ResultPath": None,
                "Next": "Succeeded",
            },
            "Succeeded": {"Type": "Succeed"},
            # The batch record is written by the workflow itself, so a failure is recorded even
            # when the Lambda function is what failed. The reason a task stored (e.g. the missing
            # header columns) is kept; otherwise the error's cause becomes the reason. The run
            # condition stops a superseded run from failing a newer upload of the same batch_id.
            "MarkFailed": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "TableName": status_table_name,
                    "Key": {
                        "pk": {"S.$": "States.Format('BATCH#{}', $$.Execution.Input.batch_id)"},
                        "sk": {"S": "SUMMARY"},
                    },
                    "UpdateExpression": (
                        "SET #status = :failed, #reason = if_not_exists(#reason, :cause), "
                        "#error = :error, #run = :run, batch_id = :batch_id, updated_at = :now"
                    ),
                    "ConditionExpression": "attribute_not_exists(pk) OR #run = :run",
                    "ExpressionAttributeNames": {
                        "#status": "status",
                        "#reason": "reason",
                        "#error": "error",
                        "#run": "run",
                    },
                    "ExpressionAttributeValues": {
                        ":failed": {"S": "FAILED"},
                        ":cause": {"S.$": "$.error.Cause"},
                        ":error": {"S.$": "$.error.Error"},
                        ":run": {"S.$": "$$.Execution.Input.version_id"},
                        ":batch_id": {"S.$": "$$.Execution.Input.batch_id"},
                        ":now": {"S.$": "$$.State.EnteredTime"},
                    },
                },
                "Retry": _RETRY,
                "ResultPath": None,
                "Next": "PublishFailure",
            },
            "PublishFailure": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": events_topic_arn,
                    "Message": {
                        "type": "batch.failed",
                        "batch_id.$": "$$.Execution.Input.batch_id",
                        "version_id.$": "$$.Execution.Input.version_id",
                        "status": "FAILED",
                        "error.$": "$.error.Error",
                        "cause.$": "$.error.Cause",
                    },
                    "MessageAttributes": {
                        "event_type": {"DataType": "String", "StringValue": "batch.failed"}
                    },
                },
                "Retry": _RETRY,
                "ResultPath": None,
                "Next": "Failed",
            },
            "Failed": {
                "Type": "Fail",
                "Error": "BatchFailed",
                "Cause": "The batch failed; see the batch record and the batch.failed event",
            },
        },
    }
