"""What invokes each function: S3 uploads start batch-trigger, the processing queue feeds the
processor, the audit log's stream feeds the publisher (the outbox) and a schedule runs the
sweeper. (API Gateway's permission lives with the API; Step Functions' in its role.)"""

from __future__ import annotations

from cdktf_cdktf_provider_aws.dynamodb_table import DynamodbTable
from cdktf_cdktf_provider_aws.lambda_event_source_mapping import (
    LambdaEventSourceMapping,
    LambdaEventSourceMappingDestinationConfig,
    LambdaEventSourceMappingDestinationConfigOnFailure,
    LambdaEventSourceMappingScalingConfig,
)
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_notification import (
    S3BucketNotification,
    S3BucketNotificationLambdaFunction,
)
from cdktf_cdktf_provider_aws.scheduler_schedule import (
    SchedulerSchedule,
    SchedulerScheduleFlexibleTimeWindow,
    SchedulerScheduleTarget,
    SchedulerScheduleTargetRetryPolicy,
)
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from lib.iam import AwsAccount, service_role, statement
from lib.settings import Settings
from lib.storage import CSV_SUFFIX, INCOMING_PREFIX

# The processor commits a batch's payments together, one transaction per step (two items a
# payment, at most 100 a transaction): 50 messages are three AWS calls. More than ten needs the
# batching window below; the processor answers with partial batch responses.
PROCESSOR_BATCH_SIZE = 50
# Waiting one second fills batches under load without delaying a lone API payment noticeably.
PROCESSOR_BATCHING_WINDOW_SECONDS = 1
# Outbox: up to 100 audit entries per invocation = ten PublishBatch calls of ten events.
PUBLISHER_BATCH_SIZE = 100
PUBLISHER_BATCHING_WINDOW_SECONDS = 1
# A publish that keeps failing (SNS or KMS down) is retried for up to a day, then the batch's
# description goes to the outbox DLQ for a human; a poisoned record is isolated by bisection.
PUBLISHER_MAX_RETRIES = 100
PUBLISHER_MAX_RECORD_AGE_SECONDS = 24 * 60 * 60
# The archiver writes one object per batch (up to ~1 MB of entries, far below the 6 MB payload).
ARCHIVER_BATCH_SIZE = 1000
ARCHIVER_BATCHING_WINDOW_SECONDS = 5


class Triggers(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        bucket: S3Bucket,
        batch_trigger: LambdaFunction,
        processing_queue: SqsQueue,
        processor: LambdaFunction,
        audit_log: DynamodbTable,
        publisher: LambdaFunction,
        outbox_dlq: SqsQueue,
        archiver: LambdaFunction,
        audit_archive_dlq: SqsQueue,
        sweeper: LambdaFunction,
        kms_key_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        permission = LambdaPermission(
            self,
            "s3-invokes-batch-trigger",
            statement_id="AllowBatchBucket",
            action="lambda:InvokeFunction",
            function_name=batch_trigger.function_name,
            principal="s3.amazonaws.com",
            source_arn=bucket.arn,
            source_account=account.account_id,
        )
        S3BucketNotification(
            self,
            "uploads",
            bucket=bucket.id,
            lambda_function=[
                S3BucketNotificationLambdaFunction(
                    lambda_function_arn=batch_trigger.arn,
                    events=["s3:ObjectCreated:*"],
                    filter_prefix=INCOMING_PREFIX,
                    filter_suffix=CSV_SUFFIX,
                )
            ],
            # S3 test-invokes the function when the notification is saved.
            depends_on=[permission],
        )
        reserved = settings.profile.concurrency.processor
        LambdaEventSourceMapping(
            self,
            "processing-queue-to-processor",
            event_source_arn=processing_queue.arn,
            function_name=processor.arn,
            batch_size=PROCESSOR_BATCH_SIZE,
            maximum_batching_window_in_seconds=PROCESSOR_BATCHING_WINDOW_SECONDS,
            function_response_types=["ReportBatchItemFailures"],
            # Pollers beyond the reserved concurrency would only be throttled and push messages
            # towards the DLQ; cap them at the function's reservation.
            scaling_config=LambdaEventSourceMappingScalingConfig(maximum_concurrency=reserved),
        )
        LambdaEventSourceMapping(
            self,
            "audit-log-stream-to-publisher",
            event_source_arn=audit_log.stream_arn,
            function_name=publisher.arn,
            # TRIM_HORIZON: entries written before the mapping existed are published too.
            starting_position="TRIM_HORIZON",
            batch_size=PUBLISHER_BATCH_SIZE,
            maximum_batching_window_in_seconds=PUBLISHER_BATCHING_WINDOW_SECONDS,
            function_response_types=["ReportBatchItemFailures"],
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=PUBLISHER_MAX_RETRIES,
            maximum_record_age_in_seconds=PUBLISHER_MAX_RECORD_AGE_SECONDS,
            destination_config=LambdaEventSourceMappingDestinationConfig(
                on_failure=LambdaEventSourceMappingDestinationConfigOnFailure(
                    destination_arn=outbox_dlq.arn
                )
            ),
        )
        LambdaEventSourceMapping(
            self,
            "audit-log-stream-to-archiver",
            event_source_arn=audit_log.stream_arn,
            function_name=archiver.arn,
            starting_position="TRIM_HORIZON",
            # One object per batch: large batches, gathered for a few seconds, keep the archive
            # to a few objects a minute at full batch speed.
            batch_size=ARCHIVER_BATCH_SIZE,
            maximum_batching_window_in_seconds=ARCHIVER_BATCHING_WINDOW_SECONDS,
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=PUBLISHER_MAX_RETRIES,
            maximum_record_age_in_seconds=PUBLISHER_MAX_RECORD_AGE_SECONDS,
            destination_config=LambdaEventSourceMappingDestinationConfig(
                on_failure=LambdaEventSourceMappingDestinationConfigOnFailure(
                    destination_arn=audit_archive_dlq.arn
                )
            ),
        )
        self._sweeper_schedule(settings, account, sweeper, kms_key_arn)

    def _sweeper_schedule(
        self, settings: Settings, account: AwsAccount, sweeper: LambdaFunction, kms_key_arn: str
    ) -> None:
        role = service_role(
            self,
            "sweeper-schedule-role",
            name=settings.name("sweeper-schedule"),
            service="scheduler.amazonaws.com",
            account=account,
            source_account_condition=True,
            statements=[
                statement(
                    sid="InvokeSweeper",
                    actions=["lambda:InvokeFunction"],
                    resources=[sweeper.arn, f"{sweeper.arn}:*"],
                ),
                # The schedule (its target input) is encrypted with the environment's CMK.
                statement(sid="DecryptSchedule", actions=["kms:Decrypt"], resources=[kms_key_arn]),
            ],
        )
        rate = settings.profile.sweep_rate_minutes
        SchedulerSchedule(
            self,
            "sweeper-schedule",
            name=settings.name("sweeper"),
            description="Re-queue payments left non-final; fail batches past the timeout",
            schedule_expression=f"rate({rate} minute{'s' if rate != 1 else ''})",
            flexible_time_window=SchedulerScheduleFlexibleTimeWindow(mode="OFF"),
            kms_key_arn=kms_key_arn,
            target=SchedulerScheduleTarget(
                arn=sweeper.arn,
                role_arn=role.role.arn,
                input="{}",
                # A missed run is covered by the next one; no point retrying an old one.
                retry_policy=SchedulerScheduleTargetRetryPolicy(
                    maximum_retry_attempts=0, maximum_event_age_in_seconds=rate * 60
                ),
            ),
            depends_on=[role.policy],
        )
