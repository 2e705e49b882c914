"""Queues and topics: processing queue + DLQ, the batch-trigger DLQ, payment-events and alarms."""

from __future__ import annotations

import hashlib
import json

from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import DataAwsIamPolicyDocumentStatement
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.sqs_queue_policy import SqsQueuePolicy
from constructs import Construct

from lib.functions import FUNCTIONS, PROCESSOR
from lib.guardrails import rule_arn_pattern
from lib.iam import AwsAccount, Condition, deny_insecure_transport, policy_document, statement
from lib.settings import Settings

PROCESSING_DLQ = "processing-dlq"
BATCH_TRIGGER_DLQ = "batch-trigger-dlq"
OUTBOX_DLQ = "outbox-dlq"
AUDIT_ARCHIVE_DLQ = "audit-archive-dlq"
PROCESSING_QUEUE = "processing"
PAYMENT_EVENTS = "payment-events"
SUBSCRIBER = "payment-events-subscriber"
SUBSCRIBER_DLQ = "payment-events-subscriber-dlq"
DAY_SECONDS = 86_400
MAX_RECEIVE_COUNT = 3
# AWS guidance for SQS event sources: visibility timeout at least six times the function
# timeout, so a message is not redelivered while Lambda is still retrying a throttled batch.
VISIBILITY_TIMEOUT_FACTOR = 6
PROCESSING_VISIBILITY_TIMEOUT = VISIBILITY_TIMEOUT_FACTOR * FUNCTIONS[PROCESSOR].timeout
# Long polling: fewer empty receives, lower cost, no extra latency for the event source mapping.
RECEIVE_WAIT_SECONDS = 20
# Downstream consumers of payment-events may be down for a weekend; keep their messages 14 days.
SUBSCRIBER_RETENTION_SECONDS = 14 * DAY_SECONDS


class Messaging(Construct):
    """All queues and topics of the environment, each encrypted with the CMK and TLS-only."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        kms_key_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        self._settings = settings
        self._account = account
        dlq_retention = settings.profile.dlq_retention_days * DAY_SECONDS
        self.dead_letter_queue_names: list[str] = []

        def dead_letter_queue(
            base: str,
            *,
            source: str | None = None,
            retention: int = dlq_retention,
            statements: tuple[DataAwsIamPolicyDocumentStatement, ...] = (),
        ) -> SqsQueue:
            """A DLQ that only its own source queue may redrive into (``byQueue``); one that
            Lambda or SNS writes to directly names no source queue at all (``denyAll``)."""
            self.dead_letter_queue_names.append(settings.name(base))
            redrive_allow = (
                {
                    "redrivePermission": "byQueue",
                    "sourceQueueArns": [account.arn("sqs", settings.name(source))],
                }
                if source
                else {"redrivePermission": "denyAll"}
            )
            queue = SqsQueue(
                self,
                base,
                name=settings.name(base),
                message_retention_seconds=retention,
                kms_master_key_id=kms_key_arn,
                # Compact, as SQS itself returns it, so a re-plan sees no whitespace change.
                redrive_allow_policy=_compact(redrive_allow),
            )
            self._queue_policy(base, queue, *statements)
            return queue

        def redrive_to(dlq: SqsQueue) -> str:
            return _compact({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": MAX_RECEIVE_COUNT})

        self.dlq = dead_letter_queue(PROCESSING_DLQ, source=PROCESSING_QUEUE)
        self.processing_queue = SqsQueue(
            self,
            PROCESSING_QUEUE,
            name=settings.name(PROCESSING_QUEUE),
            visibility_timeout_seconds=PROCESSING_VISIBILITY_TIMEOUT,
            receive_wait_time_seconds=RECEIVE_WAIT_SECONDS,
            # A message keeps its first enqueue time in the DLQ, so the DLQ must keep messages
            # longer than this queue does, or one that aged here expires there before anyone
            # looks: a day less than the DLQ, at most four days.
            message_retention_seconds=min(dlq_retention - DAY_SECONDS, 4 * DAY_SECONDS),
            kms_master_key_id=kms_key_arn,
            redrive_policy=redrive_to(self.dlq),
        )
        self._queue_policy("processing", self.processing_queue)
        # S3 invokes batch-trigger asynchronously; events Lambda gives up on land here.
        self.batch_trigger_dlq = dead_letter_queue(BATCH_TRIGGER_DLQ)
        # Audit-log stream batches the publisher gave up on (after its retries) land here.
        self.outbox_dlq = dead_letter_queue(OUTBOX_DLQ)
        # ... and those the audit archiver gave up on.
        self.audit_archive_dlq = dead_letter_queue(AUDIT_ARCHIVE_DLQ)
        self.payment_events = SnsTopic(
            self,
            PAYMENT_EVENTS,
            name=settings.name(PAYMENT_EVENTS),
            kms_master_key_id=kms_key_arn,
        )
        self._topic_policy("payment-events", self.payment_events)
        self.alarms = SnsTopic(
            self, "alarms", name=settings.name("alarms"), kms_master_key_id=kms_key_arn
        )
        # Who is paged (ALARM_SUBSCRIPTIONS; required in production). Each subscription's id
        # comes from its endpoint, so adding or reordering entries replaces no other one. An
        # email or HTTPS endpoint confirms the subscription once; an SQS queue (an incident
        # tool's) must let this topic send to it and, if encrypted, SNS use its key.
        for protocol, endpoint in settings.alarm_subscriptions:
            digest = hashlib.sha256(endpoint.encode()).hexdigest()[:12]
            SnsTopicSubscription(
                self,
                f"alarm-subscription-{protocol}-{digest}",
                topic_arn=self.alarms.arn,
                protocol=protocol,
                endpoint=endpoint,
            )
        # A topic policy replaces SNS's default one, which is what let CloudWatch publish.
        self._topic_policy(
            "alarms",
            self.alarms,
            statement(
                sid="CloudWatchAlarmsOfThisAccount",
                actions=["sns:Publish"],
                resources=[self.alarms.arn],
                principals={"Service": ["cloudwatch.amazonaws.com"]},
                conditions=[
                    Condition(
                        test="StringEquals",
                        variable="aws:SourceAccount",
                        values=[account.account_id],
                    )
                ],
            ),
            # The guard rules (lib/guardrails.py): the key disabled, PITR or deletion
            # protection switched off.
            statement(
                sid="GuardRulesOfThisEnvironment",
                actions=["sns:Publish"],
                resources=[self.alarms.arn],
                principals={"Service": ["events.amazonaws.com"]},
                conditions=[
                    Condition(
                        test="ArnLike",
                        variable="aws:SourceArn",
                        values=[rule_arn_pattern(settings, account)],
                    )
                ],
            ),
        )
        # A downstream consumer that keeps failing on an event parks it here; an event SNS cannot
        # deliver into the subscriber queue at all (its policy or key broken) too: the
        # subscription's redrive policy. Both kinds are moved back with SQS's message-move task
        # (README, "Redrive runbook").
        self.subscriber_dlq = dead_letter_queue(
            SUBSCRIBER_DLQ,
            source=SUBSCRIBER,
            retention=SUBSCRIBER_RETENTION_SECONDS,
            statements=(self._from_payment_events("SnsUndeliverableEvents", SUBSCRIBER_DLQ),),
        )
        self.subscriber_queue = SqsQueue(
            self,
            SUBSCRIBER,
            name=settings.name(SUBSCRIBER),
            message_retention_seconds=SUBSCRIBER_RETENTION_SECONDS,
            kms_master_key_id=kms_key_arn,
            redrive_policy=redrive_to(self.subscriber_dlq),
        )
        subscriber_policy = self._queue_policy(
            "subscriber",
            self.subscriber_queue,
            self._from_payment_events("PaymentEventsTopicOnly", SUBSCRIBER),
        )
        SnsTopicSubscription(
            self,
            "subscriber-subscription",
            topic_arn=self.payment_events.arn,
            protocol="sqs",
            endpoint=self.subscriber_queue.arn,
            # Consumers read the event JSON itself, not SNS's envelope around it.
            raw_message_delivery=True,
            redrive_policy=_compact({"deadLetterTargetArn": self.subscriber_dlq.arn}),
            depends_on=[subscriber_policy],
        )

    def _from_payment_events(self, sid: str, base: str) -> DataAwsIamPolicyDocumentStatement:
        """SNS may send into the queue named ``base``, for the payment-events topic only."""
        return statement(
            sid=sid.replace("-", ""),
            actions=["sqs:SendMessage"],
            resources=[self._account.arn("sqs", self._settings.name(base))],
            principals={"Service": ["sns.amazonaws.com"]},
            conditions=[
                Condition(
                    test="ArnEquals",
                    variable="aws:SourceArn",
                    values=[self.payment_events.arn],
                )
            ],
        )

    def _queue_policy(
        self, id_: str, queue: SqsQueue, *statements: DataAwsIamPolicyDocumentStatement
    ) -> SqsQueuePolicy:
        document = policy_document(
            self,
            f"{id_}-policy-document",
            [deny_insecure_transport(actions=["sqs:*"], resources=[queue.arn]), *statements],
        )
        return SqsQueuePolicy(self, f"{id_}-policy", queue_url=queue.url, policy=document.json)

    def _topic_policy(
        self, id_: str, topic: SnsTopic, *statements: DataAwsIamPolicyDocumentStatement
    ) -> SnsTopicPolicy:
        document = policy_document(
            self,
            f"{id_}-policy-document",
            [deny_insecure_transport(actions=["sns:Publish"], resources=[topic.arn]), *statements],
        )
        return SnsTopicPolicy(self, f"{id_}-policy", arn=topic.arn, policy=document.json)


def _compact(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"))
