"""Queues, the event source mapping and the topics."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.lambda_event_source_mapping import LambdaEventSourceMapping
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.sqs_queue_policy import SqsQueuePolicy

from lib.functions import FUNCTIONS, PROCESSOR

DAY = 86_400


def _queue(synth, base: str) -> dict:
    name = synth.settings.name(base)
    return next(q for q in synth.resources(SqsQueue.TF_RESOURCE_TYPE).values() if q["name"] == name)


class TestQueues:
    def test_processing_queue_sends_to_the_dlq_after_three_failed_receives(self, each):
        redrive = json.loads(_queue(each, "processing")["redrive_policy"])
        assert redrive["maxReceiveCount"] == 3
        assert "processing-dlq" in redrive["deadLetterTargetArn"]

    def test_visibility_timeout_is_at_least_six_times_the_processor_timeout(self, each):
        visibility = _queue(each, "processing")["visibility_timeout_seconds"]
        assert visibility >= 6 * FUNCTIONS[PROCESSOR].timeout

    def test_dead_letter_queues_keep_messages_for_the_profiles_days(self, each):
        for base in ("processing-dlq", "batch-trigger-dlq"):
            assert (
                _queue(each, base)["message_retention_seconds"]
                == each.profile.dlq_retention_days * DAY
            )

    def test_a_dlq_keeps_messages_at_least_as_long_as_its_source_queue(self, each):
        source = _queue(each, "processing")["message_retention_seconds"]
        assert _queue(each, "processing-dlq")["message_retention_seconds"] >= source

    def test_every_queue_is_encrypted_with_the_cmk(self, each):
        queues = each.resources(SqsQueue.TF_RESOURCE_TYPE).values()
        assert len(queues) == 4
        assert all("aws_kms_key" in q["kms_master_key_id"] for q in queues)

    def test_dlq_retention_differs_between_production_and_dev(self, production, dev):
        assert _queue(production, "processing-dlq")["message_retention_seconds"] == 14 * DAY
        assert _queue(dev, "processing-dlq")["message_retention_seconds"] != 14 * DAY

    def test_processor_reads_batches_of_ten_with_partial_batch_responses(self, each):
        assert each.has(
            LambdaEventSourceMapping.TF_RESOURCE_TYPE,
            {
                "batch_size": 10,
                "maximum_batching_window_in_seconds": 1,
                "function_response_types": ["ReportBatchItemFailures"],
            },
        )
        mapping = each.one(LambdaEventSourceMapping.TF_RESOURCE_TYPE)
        assert "messaging_processing_" in mapping["event_source_arn"]
        assert "functions_processor_" in mapping["function_name"]

    def test_pollers_are_capped_at_the_processors_reserved_concurrency(self, production, dev):
        mapping = production.one(LambdaEventSourceMapping.TF_RESOURCE_TYPE)
        assert mapping["scaling_config"] == {
            "maximum_concurrency": production.profile.processor_reserved_concurrency
        }
        assert "scaling_config" not in dev.one(LambdaEventSourceMapping.TF_RESOURCE_TYPE)


class TestTopics:
    def test_payment_events_and_alarms_topics_use_the_cmk(self, each):
        topics = {t["name"]: t for t in each.resources(SnsTopic.TF_RESOURCE_TYPE).values()}
        assert set(topics) == {each.settings.name("payment-events"), each.settings.name("alarms")}
        assert all("aws_kms_key" in t["kms_master_key_id"] for t in topics.values())

    def test_subscriber_queue_gets_raw_payment_events(self, each):
        subscription = each.one(SnsTopicSubscription.TF_RESOURCE_TYPE)
        assert subscription["protocol"] == "sqs"
        assert subscription["raw_message_delivery"] is True
        assert "payment-events-subscriber" in subscription["endpoint"]
        assert "payment-events" in subscription["topic_arn"]

    def test_subscriber_queue_accepts_messages_from_the_payment_events_topic_only(self, each):
        policy = each.one(SqsQueuePolicy.TF_RESOURCE_TYPE)
        document = each.data("aws_iam_policy_document")[policy["policy"].split(".")[2]]
        (statement,) = document["statement"]
        assert statement["actions"] == ["sqs:SendMessage"]
        assert statement["principals"] == [
            {"type": "Service", "identifiers": ["sns.amazonaws.com"]}
        ]
        (condition,) = statement["condition"]
        assert condition["variable"] == "aws:SourceArn"
        (topic,) = condition["values"]
        assert topic.startswith("${aws_sns_topic.messaging_payment-events_")
