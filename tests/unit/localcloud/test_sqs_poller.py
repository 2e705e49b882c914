"""The SQS poller: Lambda's partial batch response rules, then real mappings in the patched moto."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from localcloud_support import RECORDING_HANDLER, REGION, recorded, wait_for

from localcloud.services.sqs import poller as sqs_poller
from localcloud.services.sqs.poller import failed_item_ids

pytestmark = pytest.mark.xdist_group("localcloud-sqs-poller")

BATCH = {"m-1", "m-2", "m-3"}

# Records each batch, then fails the records whose body starts with "poison": by raising when the
# event says so, otherwise by naming them in batchItemFailures.
HANDLER = (
    RECORDING_HANDLER
    + """
def handler(event, context):
    record(event)
    poison = [r["messageId"] for r in event["Records"] if r["body"].startswith("poison")]
    if poison and any(r["body"] == "poison-raise" for r in event["Records"]):
        raise RuntimeError("batch failed")
    return {"batchItemFailures": [{"itemIdentifier": p} for p in poison]}
"""
)


class TestFailedItemIds:
    @pytest.mark.parametrize(
        "response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}]
    )
    def test_empty_or_null_failures_are_full_success(self, response):
        payload = "" if response is None else json.dumps(response)
        assert failed_item_ids(payload, BATCH) == set()

    @pytest.mark.parametrize("payload", ["not json", '"ok"', "[]", "null"])
    def test_a_response_that_is_not_a_json_object_fails_the_whole_batch(self, payload):
        expected = set() if payload == "null" else None  # a null response is full success
        assert failed_item_ids(payload, BATCH) == expected

    def test_named_items_are_the_ones_kept(self):
        payload = json.dumps({"batchItemFailures": [{"itemIdentifier": "m-2"}]})
        assert failed_item_ids(payload, BATCH) == {"m-2"}

    @pytest.mark.parametrize(
        "failures",
        [
            [{"itemIdentifier": ""}],
            [{"itemIdentifier": None}],
            [{"messageId": "m-1"}],  # the wrong key name
            [{"itemIdentifier": "m-1"}, {"itemIdentifier": "not-in-batch"}],
            ["m-1"],
            {"itemIdentifier": "m-1"},
        ],
    )
    def test_malformed_failures_fail_the_whole_batch(self, failures):
        assert failed_item_ids(json.dumps({"batchItemFailures": failures}), BATCH) is None


@pytest.fixture
def fast_idle_poll(monkeypatch):
    # How often an idle poller looks again is latency, not behaviour: the visibility timeout still
    # decides when a kept message comes back.
    monkeypatch.setattr(sqs_poller, "IDLE_POLL_SECONDS", 0.1)


@dataclass
class Consumer:
    url: str
    arn: str
    dlq_url: str
    record_file: Path


def consumer(
    cloud, tmp_path, name: str, *, visibility: int, max_receives: int, report: bool
) -> Consumer:
    """A queue with a DLQ, a recording function and the mapping between them."""
    record_file = tmp_path / f"{name}.jsonl"
    dlq_url, dlq_arn = cloud.create_queue(f"{name}-dlq")
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
    url, arn = cloud.create_queue(name, VisibilityTimeout=str(visibility), RedrivePolicy=redrive)
    cloud.create_function(
        name, HANDLER, Environment={"Variables": {"RECORD_FILE": str(record_file)}}
    )
    cloud.client("lambda").create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"] if report else [],
    )
    return Consumer(url=url, arn=arn, dlq_url=dlq_url, record_file=record_file)


def receipts(record_file) -> list[tuple[str, str]]:
    """(body, ApproximateReceiveCount) of every record the function received, in order."""
    return [
        (r["body"], r["attributes"]["ApproximateReceiveCount"])
        for event in recorded(record_file)
        for r in event["Records"]
    ]


def send_batch(cloud, url: str, bodies: list[str]) -> None:
    cloud.client("sqs").send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    )


def drained(cloud, url: str) -> bool:
    counts = cloud.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return set(counts.values()) == {"0"}


def dead_letters(cloud, dlq_url: str) -> list[str]:
    """The bodies in the DLQ, left visible for the next look."""
    messages = cloud.client("sqs").receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return sorted(m["Body"] for m in messages.get("Messages", []))


class TestDelivery:
    def test_partial_failure_keeps_only_the_named_item_until_it_reaches_the_dlq(
        self, cloud, tmp_path, fast_idle_poll
    ):
        c = consumer(cloud, tmp_path, "partial", visibility=1, max_receives=2, report=True)
        send_batch(cloud, c.url, ["good-1", "poison", "good-2"])
        assert wait_for(lambda: dead_letters(cloud, c.dlq_url)) == ["poison"]
        assert drained(cloud, c.url)
        seen = receipts(c.record_file)
        assert sorted(seen) == [("good-1", "1"), ("good-2", "1"), ("poison", "1"), ("poison", "2")]

    def test_failed_invocation_returns_the_whole_batch(self, cloud, tmp_path, fast_idle_poll):
        c = consumer(cloud, tmp_path, "whole", visibility=0, max_receives=2, report=True)
        send_batch(cloud, c.url, ["good", "poison-raise"])
        assert wait_for(lambda: len(dead_letters(cloud, c.dlq_url)) == 2)
        # Batches of one mapping run concurrently, as in Lambda: with no visibility timeout the
        # second receive may still be invoking when the third moves the messages to the DLQ.
        seen = wait_for(lambda: len(receipts(c.record_file)) == 4 and receipts(c.record_file))
        assert sorted(seen) == [
            ("good", "1"),
            ("good", "2"),
            ("poison-raise", "1"),
            ("poison-raise", "2"),
        ]

    def test_without_report_batch_item_failures_the_response_is_ignored(self, cloud, tmp_path):
        c = consumer(cloud, tmp_path, "ignored", visibility=0, max_receives=1, report=False)
        send_batch(cloud, c.url, ["good", "poison"])
        wait_for(lambda: len(receipts(c.record_file)) == 2)
        assert wait_for(lambda: drained(cloud, c.url))
        assert dead_letters(cloud, c.dlq_url) == []
        assert sorted(receipts(c.record_file)) == [("good", "1"), ("poison", "1")]

    def test_record_carries_what_lambda_puts_in_an_sqs_event(self, cloud, tmp_path):
        c = consumer(cloud, tmp_path, "shape", visibility=30, max_receives=3, report=True)
        sent = cloud.client("sqs").send_message(
            QueueUrl=c.url,
            MessageBody='{"payment_id": "p-1"}',
            MessageAttributes={"source": {"DataType": "String", "StringValue": "api"}},
        )
        (event,) = wait_for(lambda: recorded(c.record_file))
        (record,) = event["Records"]
        assert record["messageId"] == sent["MessageId"]
        assert record["body"] == '{"payment_id": "p-1"}'
        assert record["md5OfBody"] == sent["MD5OfMessageBody"]
        assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
            "aws:sqs",
            c.arn,
            REGION,
        )
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["messageAttributes"] == {
            "source": {
                "dataType": "String",
                "stringValue": "api",
                "stringListValues": [],
                "binaryListValues": [],
            }
        }
        assert record["receiptHandle"]


class TestSendMessage:
    def test_fifo_content_based_deduplication_still_applies(self, cloud):
        url, _ = cloud.create_queue(
            "dedup.fifo", FifoQueue="true", ContentBasedDeduplication="true"
        )
        sqs = cloud.client("sqs")
        for _ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
        read = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert read["Attributes"]["ApproximateNumberOfMessages"] == "1"
        plain, _ = cloud.create_queue("no-dedup.fifo", FifoQueue="true")
        with pytest.raises(ClientError):
            sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")
