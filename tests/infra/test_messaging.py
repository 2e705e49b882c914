"""Queues, the event source mapping and the topics."""

from __future__ import annotations

import json
from typing import ClassVar

from cdktf_cdktf_provider_aws.lambda_event_source_mapping import LambdaEventSourceMapping
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.sqs_queue_policy import SqsQueuePolicy

from lib.functions import FUNCTIONS, PROCESSOR

DAY = 86_400


def _document(synth, policy: dict) -> dict:
    return synth.data("aws_iam_policy_document")[policy["policy"].split(".")[2]]


def _denies_insecure_transport(document: dict, action: str) -> bool:
    return any(
        s["effect"] == "Deny"
        and s["actions"] == [action]
        and s["principals"] == [{"type": "*", "identifiers": ["*"]}]
        and s["condition"]
        == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]
        for s in document["statement"]
    )


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
        for base in ("processing-dlq", "batch-trigger-dlq", "outbox-dlq"):
            assert (
                _queue(each, base)["message_retention_seconds"]
                == each.profile.dlq_retention_days * DAY
            )

    def test_a_dlq_keeps_messages_longer_than_its_source_queue(self, each):
        # SQS keeps a message's original enqueue time when it moves it to the DLQ.
        source = _queue(each, "processing")["message_retention_seconds"]
        assert _queue(each, "processing-dlq")["message_retention_seconds"] > source

    def test_every_queue_is_encrypted_with_the_cmk(self, each):
        queues = each.resources(SqsQueue.TF_RESOURCE_TYPE).values()
        assert len(queues) == 7
        assert all("aws_kms_key" in q["kms_master_key_id"] for q in queues)

    def test_dlq_retention_differs_between_production_and_dev(self, production, dev):
        assert _queue(production, "processing-dlq")["message_retention_seconds"] == 14 * DAY
        assert _queue(dev, "processing-dlq")["message_retention_seconds"] != 14 * DAY

    def test_processor_reads_batches_of_fifty_with_partial_batch_responses(self, each):
        assert each.has(
            LambdaEventSourceMapping.TF_RESOURCE_TYPE,
            {
                "batch_size": 50,
                "maximum_batching_window_in_seconds": 1,
                "function_response_types": ["ReportBatchItemFailures"],
            },
        )
        mapping = _mapping(each, "functions_processor_")
        assert "messaging_processing_" in mapping["event_source_arn"]

    def test_pollers_are_capped_at_the_processors_reserved_concurrency(self, each):
        mapping = _mapping(each, "functions_processor_")
        assert mapping["scaling_config"] == {
            "maximum_concurrency": each.profile.concurrency.processor
        }
        # SQS event source mappings accept 2 to 1,000.
        assert 2 <= each.profile.concurrency.processor <= 1000


def _mapping(synth, function_marker: str) -> dict:
    (mapping,) = [
        m
        for m in synth.resources(LambdaEventSourceMapping.TF_RESOURCE_TYPE).values()
        if function_marker in m["function_name"]
    ]
    return mapping


class TestNothingIsLostDownstream:
    DLQS: ClassVar[dict[str, str | None]] = {
        "processing-dlq": "processing",
        "payment-events-subscriber-dlq": "payment-events-subscriber",
        # Lambda (async DLQ, stream on-failure destination) writes these; no queue redrives in.
        "batch-trigger-dlq": None,
        "outbox-dlq": None,
        "audit-archive-dlq": None,
    }

    def test_every_dlq_has_a_redrive_allow_policy_naming_only_its_source(self, each):
        for base, source in self.DLQS.items():
            allow = json.loads(_queue(each, base)["redrive_allow_policy"])
            if source is None:
                assert allow == {"redrivePermission": "denyAll"}, base
                continue
            assert allow["redrivePermission"] == "byQueue"
            (arn,) = allow["sourceQueueArns"]
            assert arn.endswith(f":{each.settings.name(source)}"), base
            assert arn.startswith("arn:${data.aws_partition.")

    def test_a_queue_without_a_dlq_is_itself_a_dlq(self, each):
        for queue in each.resources(SqsQueue.TF_RESOURCE_TYPE).values():
            base = queue["name"].removeprefix("payments-").removesuffix(f"-{each.settings.suffix}")
            assert ("redrive_policy" in queue) != (base in self.DLQS), base

    def test_the_subscriber_queue_parks_poison_events_after_three_receives(self, each):
        redrive = json.loads(_queue(each, "payment-events-subscriber")["redrive_policy"])
        assert redrive["maxReceiveCount"] == 3
        assert "payment-events-subscriber-dlq" in redrive["deadLetterTargetArn"]

    def test_subscriber_dlq_keeps_events_as_long_as_the_subscriber_queue(self, each):
        assert (
            _queue(each, "payment-events-subscriber-dlq")["message_retention_seconds"]
            >= _queue(each, "payment-events-subscriber")["message_retention_seconds"]
        )

    def test_events_sns_cannot_deliver_go_to_the_subscriber_dlq(self, each):
        subscription = each.one(SnsTopicSubscription.TF_RESOURCE_TYPE, "subscriber-subscription")
        redrive = json.loads(subscription["redrive_policy"])
        assert "payment-events-subscriber-dlq" in redrive["deadLetterTargetArn"]
        policy = next(
            p
            for p in each.resources(SqsQueuePolicy.TF_RESOURCE_TYPE).values()
            if "payment-events-subscriber-dlq" in p["queue_url"]
        )
        (allow,) = [s for s in _document(each, policy)["statement"] if s["effect"] == "Allow"]
        assert allow["principals"] == [{"type": "Service", "identifiers": ["sns.amazonaws.com"]}]
        assert allow["condition"][0]["values"][0].startswith("${aws_sns_topic.messaging_payment-")

    def test_every_dlq_is_alarmed(self, staging):
        alarms = {
            a["alarm_name"] for a in staging.resources("aws_cloudwatch_metric_alarm").values()
        }
        for base in self.DLQS:
            assert f"{staging.settings.name(base)}-not-empty" in alarms


class TestOutbox:
    def test_the_audit_log_stream_feeds_the_publisher_from_the_first_record(self, each):
        mapping = _mapping(each, "functions_publisher_")
        assert "tables_audit-log_" in mapping["event_source_arn"]
        assert mapping["event_source_arn"].endswith(".stream_arn}")
        assert mapping["starting_position"] == "TRIM_HORIZON"
        assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
        assert mapping["bisect_batch_on_function_error"] is True
        assert mapping["batch_size"] == 100  # ten PublishBatch calls of ten

    def test_records_the_publisher_gives_up_on_go_to_the_outbox_dlq(self, each):
        mapping = _mapping(each, "functions_publisher_")
        destination = mapping["destination_config"]["on_failure"]["destination_arn"]
        assert "messaging_outbox-dlq_" in destination
        assert 0 < mapping["maximum_retry_attempts"] <= 10_000
        assert mapping["maximum_record_age_in_seconds"] == 24 * 3600

    def test_the_same_stream_feeds_the_archiver_in_large_batches(self, each):
        mapping = _mapping(each, "functions_archiver_")
        publisher = _mapping(each, "functions_publisher_")
        # DynamoDB Streams serves two readers per shard at full speed: the publisher and this.
        assert mapping["event_source_arn"] == publisher["event_source_arn"]
        assert mapping["starting_position"] == "TRIM_HORIZON"
        # One object per batch; a failed batch is split to isolate what fails.
        assert mapping["batch_size"] == 1000
        assert mapping["bisect_batch_on_function_error"] is True
        assert "function_response_types" not in mapping
        destination = mapping["destination_config"]["on_failure"]["destination_arn"]
        assert "messaging_audit-archive-dlq_" in destination
        assert mapping["maximum_record_age_in_seconds"] == 24 * 3600


class TestTopics:
    def test_payment_events_and_alarms_topics_use_the_cmk(self, each):
        topics = {t["name"]: t for t in each.resources(SnsTopic.TF_RESOURCE_TYPE).values()}
        assert set(topics) == {each.settings.name("payment-events"), each.settings.name("alarms")}
        assert all("aws_kms_key" in t["kms_master_key_id"] for t in topics.values())

    def test_subscriber_queue_gets_raw_payment_events(self, each):
        subscription = each.one(SnsTopicSubscription.TF_RESOURCE_TYPE, "subscriber-subscription")
        assert subscription["protocol"] == "sqs"
        assert subscription["raw_message_delivery"] is True
        assert "payment-events-subscriber" in subscription["endpoint"]
        assert "payment-events" in subscription["topic_arn"]

    def test_subscriber_queue_accepts_messages_from_the_payment_events_topic_only(self, each):
        policy = next(
            p
            for p in each.resources(SqsQueuePolicy.TF_RESOURCE_TYPE).values()
            if "payment-events-subscriber" in p["queue_url"]
        )
        allows = [s for s in _document(each, policy)["statement"] if s["effect"] == "Allow"]
        (statement,) = allows
        assert statement["actions"] == ["sqs:SendMessage"]
        assert statement["principals"] == [
            {"type": "Service", "identifiers": ["sns.amazonaws.com"]}
        ]
        (condition,) = statement["condition"]
        assert condition["variable"] == "aws:SourceArn"
        (topic,) = condition["values"]
        assert topic.startswith("${aws_sns_topic.messaging_payment-events_")

    def test_only_cloudwatch_and_the_guard_rules_are_allowed_to_publish_alarms(self, each):
        policies = {
            p["arn"].split(".")[1]: p
            for p in each.resources(SnsTopicPolicy.TF_RESOURCE_TYPE).values()
        }
        for topic_id, policy in policies.items():
            allows = [s for s in _document(each, policy)["statement"] if s["effect"] == "Allow"]
            if not topic_id.startswith("messaging_alarms_"):
                assert allows == []
                continue
            cloudwatch, guard_rules = allows
            assert cloudwatch["principals"] == [
                {"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}
            ]
            assert cloudwatch["condition"][0]["variable"] == "aws:SourceAccount"
            assert guard_rules["principals"] == [
                {"type": "Service", "identifiers": ["events.amazonaws.com"]}
            ]
            assert guard_rules["condition"][0]["variable"] == "aws:SourceArn"


class TestTransport:
    def test_every_queue_refuses_requests_without_tls(self, each):
        queues = each.resources(SqsQueue.TF_RESOURCE_TYPE)
        policies = each.resources(SqsQueuePolicy.TF_RESOURCE_TYPE).values()
        assert sorted(p["queue_url"] for p in policies) == sorted(
            f"${{aws_sqs_queue.{id_}.url}}" for id_ in queues
        )
        assert all(_denies_insecure_transport(_document(each, p), "sqs:*") for p in policies)

    def test_every_topic_refuses_publishing_without_tls(self, each):
        topics = each.resources(SnsTopic.TF_RESOURCE_TYPE)
        policies = each.resources(SnsTopicPolicy.TF_RESOURCE_TYPE).values()
        assert sorted(p["arn"] for p in policies) == sorted(
            f"${{aws_sns_topic.{id_}.arn}}" for id_ in topics
        )
        assert all(_denies_insecure_transport(_document(each, p), "sns:Publish") for p in policies)
