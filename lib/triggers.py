"""What invokes each function: S3 uploads start batch-trigger, the processing queue feeds the
processor. (API Gateway's permission lives with the API; Step Functions' in its role.)"""

from __future__ import annotations

from cdktf_cdktf_provider_aws.lambda_event_source_mapping import (
    LambdaEventSourceMapping,
    LambdaEventSourceMappingScalingConfig,
)
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_notification import (
    S3BucketNotification,
    S3BucketNotificationLambdaFunction,
)
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from lib.iam import AwsAccount
from lib.settings import Settings
from lib.storage import CSV_SUFFIX, INCOMING_PREFIX

# SendMessageBatch's maximum; the processor answers with partial batch responses.
PROCESSOR_BATCH_SIZE = 10
# Waiting one second fills batches under load without delaying a lone API payment noticeably.
PROCESSOR_BATCHING_WINDOW_SECONDS = 1


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
        reserved = settings.profile.processor_reserved_concurrency
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
            scaling_config=LambdaEventSourceMappingScalingConfig(maximum_concurrency=reserved)
            if reserved >= 2
            else None,
        )
