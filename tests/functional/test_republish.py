"""``make republish``: the audit log published again under the original event_ids (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from payments import aws, env
from payments.events import event_id
from payments.republish import Republisher, instant

from tests.functional.consumer import Consumer, first_deliveries_overtaken
from tests.functional.test_outbox import delivered, processed_payments
from tests.functional.world import REGION, LambdaContext, inject_failures
from tests.scripts import script


def publish_all(world, records) -> None:
    """The publisher over the stream's records, as the mapping hands them over."""
    from handlers import publisher

    result = publisher.handler({"Records": records}, LambdaContext("payments-publisher"))
    assert result == {"batchItemFailures": []}


def republisher(world) -> Republisher:
    return Republisher(world.env[env.AUDIT_LOG_TABLE], world.env[env.PAYMENT_EVENTS_TOPIC_ARN])


def audited(world) -> dict[str, dict]:
    return {event_id(e): e for e in world.audit()}


def batch_info(world, records) -> dict:
    """What the stream mapping sends its on-failure destination for ``records``."""
    streams = world.extra.setdefault("streams", boto3.client("dynamodbstreams"))
    arn = records[0]["eventSourceARN"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    arrival = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 101},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrival,
            "approximateArrivalOfLastRecord": arrival,
            "batchSize": len(records),
            "streamArn": arn,
        },
    }


@pytest.fixture
def dlq(world):
    return world.sqs.create_queue(QueueName="payments-outbox-dlq-test")["QueueUrl"]


class TestRepublish:
    def test_republished_events_are_the_published_ones_with_the_same_event_ids(self, world):
        publish_all(world, processed_payments(world, 3))
        original = {e["event_id"]: e for e in delivered(world)}
        assert set(original) == set(audited(world))
        result = republisher(world).publish(world.audit())
        assert result.ok and result.published == len(original)
        again = delivered(world)
        assert sorted(e["event_id"] for e in again) == sorted(original)
        assert all(e == original[e["event_id"]] for e in again)
        # Each payment's versions one after another, as the publisher sends them.
        assert first_deliveries_overtaken(again) == []

    def test_by_entity_and_by_time_window(self, world):
        publish_all(world, processed_payments(world, 3))
        delivered(world)
        rp = republisher(world)
        assert {e["sk"] for e in rp.entries_of("PAYMENT#p1")} == {
            "0001#RECEIVED",
            "0002#PROCESSING",
            "0003#FAILED",
        }
        now = datetime.now(UTC)
        since = instant((now - timedelta(minutes=1)).isoformat(), "since")
        assert len(rp.entries_between(since, instant(now.isoformat(), "until"))) == 10
        assert rp.entries_between(instant(now.isoformat(), "since"), "9999") == []

    def test_the_script_republishes_one_payment_and_a_second_run_only_makes_copies(
        self, world, capsys
    ):
        publish_all(world, processed_payments(world, 2))
        original = {e["event_id"]: e for e in delivered(world) if e["payment_id"] == "p0"}
        for _ in range(2):
            assert script("republish").main(["--entity", "PAYMENT#p0"]) == 0
        assert "events published:      4 in 4 PublishBatch calls" in capsys.readouterr().out
        again = delivered(world)
        assert sorted(e["event_id"] for e in again) == sorted(list(original) * 2)
        assert all(e == original[e["event_id"]] for e in again)

    def test_a_failed_publish_is_retried_from_the_first_event_not_out(self, world, monkeypatch):
        from payments import republish

        monkeypatch.setattr(republish, "RETRY_SECONDS", 0.0)
        processed_payments(world, 12)
        inject_failures(aws.client("sns"), "PublishBatch", times=2, code="Throttling")
        result = republisher(world).publish(world.audit())
        assert result.ok, result
        consumer = Consumer().consume(delivered(world))
        assert consumer.payments() == {
            p["payment_id"]: (int(p["version"]), p["status"]) for p in world.payments()
        }

    def test_an_entry_without_an_event_is_reported_and_the_others_go_out(self, world):
        processed_payments(world, 1)
        odd = {"entity_id": "PAYMENT#odd", "sk": "NOTE#1"}
        result = republisher(world).publish([*world.audit(), odd])
        assert not result.ok and result.unmappable == [
            "PAYMENT#odd/NOTE#1: no event is defined for audit entry PAYMENT#odd/NOTE#1"
        ]
        assert len(delivered(world)) == len(world.audit())


class TestDeadLetters:
    def test_a_given_up_stream_batch_is_republished_from_the_stream_and_its_message_deleted(
        self, world, dlq
    ):
        records = processed_payments(world, 4)  # the publisher gave up on all of these
        world.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(batch_info(world, records)))
        report = republisher(world).drain_dead_letters(dlq)
        assert (report.messages, report.deleted, report.kept) == (1, 1, [])
        events = delivered(world)
        assert sorted(e["event_id"] for e in events) == sorted(audited(world))
        assert world.receive_all(dlq) == []

    def test_only_the_records_the_message_names_when_the_stream_has_them(self, world, dlq):
        records = processed_payments(world, 4)
        world.sqs.send_message(
            QueueUrl=dlq, MessageBody=json.dumps(batch_info(world, records[2:5]))
        )
        assert republisher(world).drain_dead_letters(dlq).deleted == 1
        wanted = [
            event_id(
                __import__("payments.repository").repository.deserialize(r["dynamodb"]["NewImage"])
            )
            for r in records[2:5]
        ]
        assert sorted(e["event_id"] for e in delivered(world)) == sorted(wanted)

    def test_when_the_stream_lacks_the_records_the_arrival_window_selects_the_entries(
        self, world, dlq
    ):
        records = processed_payments(world, 2)
        message = batch_info(world, records)
        # Sequence numbers the shard does not hold (moto models no 24-hour trim; AWS would
        # answer TrimmedDataAccessException, which takes the same way).
        absent = str(int(records[-1]["dynamodb"]["SequenceNumber"]) + 1000)
        message["DDBStreamBatchInfo"].update(startSequenceNumber=absent, endSequenceNumber=absent)
        world.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(message))
        report = republisher(world).drain_dead_letters(dlq)
        assert report.deleted == 1
        assert sorted(e["event_id"] for e in delivered(world)) == sorted(audited(world))

    def test_a_message_about_another_tables_stream_stays_in_the_queue(self, world, dlq):
        records = processed_payments(world, 1)
        message = batch_info(world, records)
        other = records[0]["eventSourceARN"].replace("/payments-audit-log-test/", "/other/")
        message["DDBStreamBatchInfo"]["streamArn"] = other
        world.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(message))
        report = republisher(world).drain_dead_letters(dlq)
        assert report.deleted == 0 and "a stream of another table" in report.kept[0]
        assert delivered(world) == [] and len(world.receive_all(dlq)) == 1

    def test_a_message_that_is_no_stream_batch_stays_in_the_queue(self, world, dlq, capsys):
        world.sqs.send_message(QueueUrl=dlq, MessageBody='{"hello": 1}')
        assert script("republish").main(["--dlq", "--dlq-url", dlq]) == 1
        out = capsys.readouterr().out
        assert "not a stream batch description" in out and "INCOMPLETE" in out
        assert len(world.receive_all(dlq)) == 1


class TestArguments:
    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            ([], "choose one of --since/--until, --entity or --dlq"),
            (["--dlq", "--entity", "PAYMENT#p1"], "choose one of"),
            (["--until", "2026-01-01T00:00:00Z"], "--until needs --since"),
            (["--since", "yesterday"], "--since 'yesterday' is not an ISO 8601 time"),
            (["--since", "2026-01-01T00:00:00"], "has no time zone"),
            (
                ["--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
                "is not before --until",
            ),
            (
                ["--entity", "p1"],
                "must be PAYMENT#<payment_id>, PAYMENT#<client>.<payment_id> or BATCH#<batch_id>",
            ),
            (["--entity", "PAYMENT#bad id"], "must be PAYMENT#"),
            (["--entity", "PAYMENT#p1", "--dlq-url", "http://q"], "--dlq-url goes with --dlq"),
        ],
    )
    def test_bad_arguments_are_refused_with_the_reason(self, argv, message, capsys):
        with pytest.raises(SystemExit) as exit_:
            script("republish").main(argv)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err

    def test_times_are_compared_as_the_audit_log_writes_them(self):
        assert instant("2026-01-01T01:00:00+01:00", "--since") == "2026-01-01T00:00:00.000Z"
        assert REGION  # the world's region: the audit log's `at` is UTC whatever it is
