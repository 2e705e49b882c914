"""The transactional outbox, the sweeper and the batch-run ordering (issue: exactly-once money).

Events come only from the audit log's stream (the real publisher handler, fed the records moto's
DynamoDB Streams returns); no handler publishes. The sweeper finds stuck work through the sparse
indexes. Every test drives the real handlers against moto.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from handlers import processor, publisher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import aws, env
from payments.batch import Batches, report_key
from payments.config import load
from payments.events import event_id
from payments.repository import deserialize
from payments.service import Payments
from payments.sweep import Sweeper
from payments.validation import validate_payment

from tests.functional.batch_driver import only_chunk, process_chunks
from tests.functional.consumer import Consumer, first_deliveries_overtaken
from tests.functional.world import (
    CallCounter,
    LambdaContext,
    error_answer,
    inject_failures,
    inject_partial_failures,
    sqs_event,
)


def submit(**fields):
    body = {"amount": "10.00", "currency": "USD", **fields}
    return Payments(load()).submit(validate_payment(body))


def deliver(world, messages=None):
    messages = messages or world.receive_all(delete=False)
    arn = world.sqs.get_queue_attributes(QueueUrl=world.queue_url, AttributeNames=["QueueArn"])
    return processor.handler(
        sqs_event(messages, arn["Attributes"]["QueueArn"]), LambdaContext("payments-processor")
    )


def audit_event_ids(world):
    return sorted(event_id(entry) for entry in world.audit())


class TestOutbox:
    def test_every_audit_entry_is_published_once_with_its_event_id(self, world):
        for i in range(12):
            submit(payment_id=f"p{i}")
        assert deliver(world) == {"batchItemFailures": []}
        events = world.events()
        assert sorted(e["event_id"] for e in events) == audit_event_ids(world)
        assert len(events) == 12 * 3
        first = next(e for e in events if e["event_id"] == "p0#1")
        assert first == {
            "type": "payment.received",
            "event_id": "p0#1",
            "client_id": "default",
            "payment_id": "p0",
            "version": 1,
            "status": "RECEIVED",
            "previous_status": None,
            "reason": None,
            "amount": "10.00",
            "currency": "USD",
            "source": "api",
            "batch_id": None,
            "at": first["at"],
        }

    def test_no_handler_publishes_and_the_publisher_sends_ten_per_call(self, world):
        calls = CallCounter().attach(aws.client("sns"))
        for i in range(7):
            submit(payment_id=f"p{i}")
        assert deliver(world) == {"batchItemFailures": []}
        assert calls.total() == 0  # the API and the processor only write
        assert world.drain_outbox() == 21
        assert calls.calls == {"sns:PublishBatch": 3}  # 21 events: 10 + 10 + 1

    def test_a_failed_publish_is_retried_from_its_first_record_and_nothing_is_lost(self, world):
        for i in range(15):
            submit(payment_id=f"p{i}")
        records = world.stream_records()
        topic = world.env[env.PAYMENT_EVENTS_TOPIC_ARN]
        eleventh = event_id(deserialize(records[10]["dynamodb"]["NewImage"]))

        def second_group(params):
            return any(eleventh in e["Message"] for e in params["PublishBatchRequestEntries"])

        # The first ten go out; the PublishBatch call of the other five fails.
        inject_failures(
            aws.client("sns"),
            "PublishBatch",
            times=1,
            code="InternalError",
            status=500,
            when=second_group,
        )
        failed = publisher.publish(records, topic, aws.client("sns"))
        assert failed == records[10]["dynamodb"]["SequenceNumber"]
        published = world.sqs.get_queue_attributes(
            QueueUrl=world.events_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        assert published == "10"
        # Lambda retries from the reported record; the first ten are not sent again.
        assert publisher.publish(records[10:], topic, aws.client("sns")) is None
        delivered = [
            json.loads(json.loads(m["Body"])["Message"])
            for m in world.receive_all(world.events_queue_url)
        ]
        assert sorted(e["event_id"] for e in delivered) == audit_event_ids(world)

    def test_partial_failure_names_the_first_failed_entry(self, world):
        for i in range(12):
            submit(payment_id=f"p{i}")
        records = world.stream_records()
        topic = world.env[env.PAYMENT_EVENTS_TOPIC_ARN]

        def fail_entry_3(params):
            entries = params["PublishBatchRequestEntries"]
            return {
                "Successful": [
                    {"Id": e["Id"], "MessageId": "m"} for e in entries if e["Id"] != "3"
                ],
                "Failed": [{"Id": "3", "Code": "InternalError", "SenderFault": False}],
            }

        first = event_id(deserialize(records[0]["dynamodb"]["NewImage"]))

        def first_group(params):
            return any(first in e["Message"] for e in params["PublishBatchRequestEntries"])

        # (The faked answer stands for SNS; nothing of that call reaches the topic here. The
        # other call, records 10 and 11, runs beside it and goes out.)
        inject_failures(
            aws.client("sns"), "PublishBatch", times=1, parsed=fail_entry_3, when=first_group
        )
        failed = publisher.publish(records, topic, aws.client("sns"))
        assert failed == records[3]["dynamodb"]["SequenceNumber"]
        # Lambda resumes from the failed record: records 3.. are published; 10 and 11 a second
        # time, under the same event_id (consumers drop the copy).
        assert publisher.publish(records[3:], topic, aws.client("sns")) is None
        expected = [event_id(deserialize(r["dynamodb"]["NewImage"])) for r in records[3:]]
        seen = collections.Counter(e["event_id"] for e in world.events())
        assert sorted(seen) == sorted(expected)
        assert all(seen[e] == 1 for e in expected[:7]) and all(seen[e] == 2 for e in expected[7:])

    @pytest.mark.tampers_with_audit_log
    def test_an_unmappable_entry_is_reported_and_earlier_ones_still_go_out(self, world):
        submit(payment_id="ok")
        world.dynamodb.put_item(
            TableName=world.env[env.AUDIT_LOG_TABLE],
            Item={"entity_id": {"S": "PAYMENT#odd"}, "sk": {"S": "NOTE#1"}},
        )
        records = world.stream_records()
        result = publisher.handler({"Records": records}, LambdaContext("payments-publisher"))
        assert result == {
            "batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]
        }
        assert [e["event_id"] for e in world.events()] == ["ok#1"]

    @pytest.mark.tampers_with_audit_log
    def test_only_inserts_are_events(self, world):
        submit(payment_id="p1")
        world.drain_outbox()
        table = world.env[env.AUDIT_LOG_TABLE]
        key = {"entity_id": {"S": "PAYMENT#p1"}, "sk": {"S": "0001#RECEIVED"}}
        world.dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET note = :n",
            ExpressionAttributeValues={":n": {"S": "x"}},
        )
        world.dynamodb.delete_item(TableName=table, Key=key)
        assert [e["event_id"] for e in world.events()] == ["p1#1"]

    def test_a_fraud_failure_is_published_even_when_the_answer_was_lost(self, world):
        from payments.validation import validate_fraud_signal

        submit(payment_id="p1")
        raw = json.dumps({"payment_id": "p1", "risk_score": 97, "reason": "velocity"}).encode()
        signal = validate_fraud_signal(json.loads(raw))
        first = Payments(load()).report_fraud(signal, raw)
        retry = Payments(load()).report_fraud(signal, raw)  # the provider never saw the answer
        assert first == retry == {"payment_id": "p1", "status": "FAILED", "action": "failed"}
        assert [e["status"] for e in world.events()] == ["RECEIVED", "PROCESSING", "FAILED"]
        # A fraud alert on the now final payment: audited once, published once.
        raw2 = json.dumps({"payment_id": "p1", "risk_score": 50, "reason": "chargeback"}).encode()
        for _ in range(2):
            Payments(load()).report_fraud(validate_fraud_signal(json.loads(raw2)), raw2)
        alerts = [e for e in world.events() if e["type"] == "payment.fraud_alert"]
        assert len(alerts) == 1 and alerts[0]["risk_score"] == 50
        assert alerts[0]["amount"] == "10.00" and alerts[0]["reason"] == "chargeback"


def delivered(world):
    """The events on the subscriber queue, in the order the queue hands them out."""
    return [
        json.loads(json.loads(m["Body"])["Message"])
        for m in world.receive_all(world.events_queue_url)
    ]


def message_event_id(entry):
    return json.loads(entry["Message"])["event_id"]


def processed_payments(world, n):
    """``n`` payments through RECEIVED, PROCESSING and their final status (p1 over the limit:
    FAILED), and a fraud alert on p0; the stream's records of it all."""
    for i in range(n):
        submit(payment_id=f"p{i}", amount="2000000.00" if i == 1 else "10.00")
    assert deliver(world) == {"batchItemFailures": []}
    from payments.validation import validate_fraud_signal

    raw = json.dumps({"payment_id": "p0", "risk_score": 40, "reason": "chargeback"}).encode()
    Payments(load()).report_fraud(validate_fraud_signal(json.loads(raw)), raw)
    return world.stream_records()


def fail_the_call_carrying(kind, wanted):
    """The next PublishBatch carrying event ``wanted`` fails: as a whole, or that entry alone."""
    sns = aws.client("sns")
    if kind == "whole call":
        return inject_failures(
            sns,
            "PublishBatch",
            times=1,
            code="InternalError",
            status=500,
            when=lambda params: any(
                message_event_id(e) == wanted for e in params["PublishBatchRequestEntries"]
            ),
        )
    return inject_partial_failures(
        sns, "PublishBatch", failing=lambda _, e: message_event_id(e) == wanted
    )


class TestEventOrder:
    def test_every_event_carries_its_entitys_version(self, world):
        records = processed_payments(world, 2)
        topic = world.env[env.PAYMENT_EVENTS_TOPIC_ARN]
        assert publisher.publish(records, topic, aws.client("sns")) is None
        events = delivered(world)
        payments = {p["payment_id"]: p for p in world.payments()}
        alert = next(e for e in events if e["type"] == "payment.fraud_alert")
        # Raised on the COMPLETED payment: its version then.
        assert alert["version"] == payments["p0"]["version"] == 3
        for e in events:
            assert isinstance(e["version"], int), e

    def test_a_batch_event_carries_the_version_its_audit_entry_records(self):
        from payments import events

        entry = {
            "entity_id": "BATCH#b1",
            "sk": "v1#COMPLETED",
            "event": events.BATCH_COMPLETED,
            "run": "v1",
            "at": "2026-01-01T00:00:00.000Z",
        }
        assert "version" not in events.from_audit(entry)
        assert events.from_audit({**entry, "version": Decimal(4)})["version"] == 4

    @pytest.mark.parametrize("kind", ["whole call", "partial"])
    def test_a_later_version_never_goes_out_before_an_earlier_one_that_failed(self, world, kind):
        records = processed_payments(world, 12)
        topic = world.env[env.PAYMENT_EVENTS_TOPIC_ARN]
        ids = [event_id(deserialize(r["dynamodb"]["NewImage"])) for r in records]
        assert {"p5#1", "p5#2", "p5#3"} <= set(ids)
        injected = fail_the_call_carrying(kind, "p5#1")
        failed = publisher.publish(records, topic, aws.client("sns"))
        assert injected["injected"] == 1
        # The first record of the failed call (p0#1 beside p5#1 in it), or p5#1 alone.
        retry_from = ids.index("p0#1" if kind == "whole call" else "p5#1")
        assert failed == records[retry_from]["dynamodb"]["SequenceNumber"]
        first = delivered(world)
        assert not {e["event_id"] for e in first} & {"p5#1", "p5#2", "p5#3"}
        assert {"p6#2", "p6#3"} <= {e["event_id"] for e in first} or kind == "whole call"
        # Lambda retries from the reported record.
        assert publisher.publish(records[retry_from:], topic, aws.client("sns")) is None
        events = first + delivered(world)
        assert first_deliveries_overtaken(events) == []
        assert [e["version"] for e in events if e["payment_id"] == "p5"] == [1, 2, 3]
        assert {e["event_id"] for e in events} == set(ids)

    def test_one_call_never_carries_two_events_of_one_entity_and_calls_stay_full(self, world):
        records = processed_payments(world, 12)  # 12 x 3 versions + 1 alert
        calls = []

        def record(params, **_):
            calls.append([json.loads(e["Message"]) for e in params["PublishBatchRequestEntries"]])

        aws.client("sns").meta.events.register("provide-client-params.sns.PublishBatch", record)
        topic = world.env[env.PAYMENT_EVENTS_TOPIC_ARN]
        assert publisher.publish(records, topic, aws.client("sns")) is None
        for call in calls:
            owners = [e["payment_id"] for e in call]
            assert len(owners) == len(set(owners)), owners
        # 37 events, at least 4 for p0 one after another: 4 calls of ten, and the rest.
        assert sum(len(c) for c in calls) == 37 and len(calls) <= 5, [len(c) for c in calls]

    def test_a_consumer_following_the_rule_ends_equal_to_the_table_whatever_the_order(self, world):
        records = processed_payments(world, 12)
        topic = world.env[env.PAYMENT_EVENTS_TOPIC_ARN]
        # A failed call and a retry from it: copies under the same event_id.
        fail_the_call_carrying("partial", "p3#2")
        failed = publisher.publish(records, topic, aws.client("sns"))
        sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
        assert (
            publisher.publish(records[sequences.index(failed) :], topic, aws.client("sns")) is None
        )
        events = delivered(world)
        assert len(events) > len(records)  # copies among them
        table = {p["payment_id"]: (int(p["version"]), p["status"]) for p in world.payments()}
        alerts = {event_id(e) for e in world.audit() if e["sk"].startswith("FRAUD_ALERT#")}

        @settings(
            max_examples=200,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(st.data())
        def consume_in_any_order(data):
            copies = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
            order = data.draw(st.permutations(events + copies))
            consumer = Consumer().consume(order)
            assert consumer.payments() == table
            assert {e["event_id"] for e in consumer.alerts} == alerts

        consume_in_any_order()


def pending_shards(world):
    return {
        p["payment_id"]: p.get("pending_shard")
        for p in world.payments()
        if p.get("pending_shard") is not None
    }


class TestSweeper:
    def later(self, minutes):
        return datetime.now(UTC) + timedelta(minutes=minutes)

    def test_only_non_final_payments_are_in_the_pending_index(self, world):
        submit(payment_id="done")
        assert deliver(world) == {"batchItemFailures": []}
        submit(payment_id="stuck")
        world.receive_all()  # its message is lost
        assert set(pending_shards(world)) == {"stuck"}

    def test_a_payment_whose_message_was_lost_is_queued_again_after_the_threshold(self, world):
        submit(payment_id="stuck")
        submit(payment_id="fine")
        world.receive_all()  # both messages lost
        cfg = load()
        assert Sweeper(cfg).run().requeued == []  # not stuck yet: just queued
        later = self.later(cfg.stuck_after_seconds / 60 + 1)
        report = Sweeper(cfg).run(now=later)
        assert sorted(report.requeued) == ["fine", "stuck"]
        assert deliver(world) == {"batchItemFailures": []}
        assert {p["payment_id"]: p["status"] for p in world.payments()} == {
            "stuck": "COMPLETED",
            "fine": "COMPLETED",
        }
        assert Sweeper(cfg).run(now=later).requeued == []  # final: out of the index

    def test_a_run_past_the_workflow_timeout_is_failed_once_and_published(self, world):
        cfg = load()
        state = register(world, "slow", b"payment_id,amount,currency\n", "0001")
        later = self.later(cfg.workflow_timeout_seconds / 60 + 1)
        assert Sweeper(cfg).run(now=later).timed_out_batches == ["slow"]
        assert Sweeper(cfg).run(now=later).timed_out_batches == []
        view = Batches(cfg).batch_view("slow")
        assert (view["status"], view["reason_code"]) == ("FAILED", "TIMED_OUT")
        # The lost execution finishing late cannot turn it COMPLETED.
        assert Batches(cfg).finalize({**state, "done": True})["superseded"] is True
        assert Batches(cfg).batch_view("slow")["status"] == "FAILED"
        events = [e for e in world.events() if e["type"].startswith("batch.")]
        assert [(e["type"], e["reason_code"]) for e in events] == [("batch.failed", "TIMED_OUT")]

    def test_the_sweepers_writes_name_only_the_attributes_its_role_allows(self, world):
        """Its role allows UpdateItem only for the attributes in lib/functions.py (IAM's
        ``dynamodb:Attributes``): every attribute its real requests name is among them."""
        import re

        from payments import aws

        from lib.functions import ENDED_RUN_ATTRIBUTES, SWEPT_PAYMENT_ATTRIBUTES

        cfg = load()
        allowed = {
            cfg.payments_table: set(SWEPT_PAYMENT_ATTRIBUTES),
            cfg.processing_status_table: set(ENDED_RUN_ATTRIBUTES),
        }
        named: dict[str, set[str]] = {}

        def names(update: dict) -> set[str]:
            found = set(update["Key"]) | set(update.get("ExpressionAttributeNames", {}).values())
            for text in (update["UpdateExpression"], update.get("ConditionExpression", "")):
                text = re.sub(r"[#:]\w+|\b(SET|REMOVE|AND|OR|NOT|ADD|DELETE)\b", " ", text)
                found |= set(re.findall(r"[A-Za-z_]\w*(?=\s*[=<>,)]|\s*$|\s)", text)) - {
                    "attribute_exists",
                    "attribute_not_exists",
                    "if_not_exists",
                    "list_append",
                }
            return found

        def record(params, **_):
            updates = (
                [params]
                if "UpdateExpression" in params
                else [i["Update"] for i in params.get("TransactItems", []) if "Update" in i]
            )
            for update in updates:
                named.setdefault(update["TableName"], set()).update(names(update))

        submit(payment_id="stuck")
        world.receive_all()  # its message is lost
        register(world, "slow", b"payment_id,amount,currency\n", "0001")
        client = aws.client("dynamodb")
        for operation in ("UpdateItem", "TransactWriteItems"):
            client.meta.events.register(f"provide-client-params.dynamodb.{operation}", record)
        cfg_later = self.later(cfg.workflow_timeout_seconds / 60 + 1)
        report = Sweeper(cfg).run(now=cfg_later)
        assert report.requeued == ["stuck"] and report.timed_out_batches == ["slow"]
        assert set(named) == set(allowed), named
        for table, attributes in named.items():
            assert attributes <= allowed[table], (table, attributes - allowed[table])


def register(world, batch_id, body, sequencer):
    """Upload a version and register its run as the S3 event (with ``sequencer``) would."""
    key = f"incoming/{batch_id}.csv"
    version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)["VersionId"]
    return Batches(load()).register(
        {"bucket": world.bucket, "key": key, "version_id": version, "sequencer": sequencer}
    )


class TestBatchRuns:
    def test_an_older_upload_arriving_late_does_not_replace_the_newer_run(self, world):
        new = register(world, "b", b"payment_id,amount,currency\nv2,1,USD\n", "00B2")
        old = register(world, "b", b"payment_id,amount,currency\nv1,1,USD\n", "00A1")
        assert old["superseded"] is True and old["done"] is True
        assert new["superseded"] is False
        batches = Batches(load())
        batches.finalize(process_chunks(batches, new))
        view = batches.batch_view("b")
        assert (view["status"], view["version_id"], view["accepted"]) == (
            "COMPLETED",
            new["run"],
            1,
        )
        assert [p["payment_id"] for p in world.payments()] == ["v2"]

    def test_a_superseded_runs_late_chunk_leaves_the_new_runs_rows_alone(self, world):
        body = b"payment_id,amount,currency\nx,-1,USD\n"
        old = register(world, "r", body, "0001")
        new = register(world, "r", body, "0002")
        batches = Batches(load())
        batches.process_chunk(only_chunk(new))
        late = batches.process_chunk(only_chunk(old))  # the old run's chunk comes after the new's
        assert late["superseded"] is True
        batches.finalize(new)
        view = batches.batch_view("r")
        assert (view["rejected"], len(view["rejected_rows"])) == (1, 1)
        assert view["report_key"] == report_key("r", new["run"])
        assert batches.finalize({**old, "done": True})["superseded"] is True

    def test_rows_stored_by_a_run_whose_sends_all_failed_are_queued_by_the_reupload(self, world):
        body = b"payment_id,amount,currency\nq1,1,USD\nq2,2,USD\n"
        state = register(world, "q", body, "0001")
        inject_failures(
            aws.client("sqs"), "SendMessageBatch", times=100, code="InternalError", status=500
        )
        with pytest.raises(Exception, match="could not be sent"):
            Batches(load()).process_chunk(only_chunk(state))
        aws.reset()  # the queue is back
        assert world.receive_all() == []
        again = register(world, "q", body, "0002")
        batches = Batches(load())
        batches.finalize(process_chunks(batches, again))
        assert batches.batch_view("q")["duplicates"] == 2
        assert sorted(json.loads(m["Body"])["payment_id"] for m in world.receive_all()) == [
            "q1",
            "q2",
        ]

    def test_batch_view_reads_only_the_current_runs_rows(self, world):
        calls = CallCounter().attach(aws.client("dynamodb"))
        body = b"payment_id,amount,currency\n" + b"x,-1,USD\n" * 30
        for n in range(3):
            state = register(world, "m", body, f"000{n}")
            batches = Batches(load())
            batches.finalize(process_chunks(batches, state))
        calls.reset()
        items = []
        original = aws.client("dynamodb").query

        def spy(**kwargs):
            response = original(**kwargs)
            items.extend(deserialize(i) for i in response["Items"])
            return response

        aws.client("dynamodb").query = spy
        view = Batches(load()).batch_view("m")
        assert view["rejected"] == 30 and len(view["rejected_rows"]) == 30
        assert len(items) == 30 and {i["run"] for i in items} == {state["run"]}


class TestRegisterRetries:
    def test_a_retried_register_resumes_the_run_instead_of_resetting_it(self, world):
        body = b"payment_id,amount,currency\n" + b"".join(b"r%d,1,USD\n" % i for i in range(9))
        key = "incoming/rr.csv"
        version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)["VersionId"]
        event = {"bucket": world.bucket, "key": key, "version_id": version, "sequencer": "0001"}
        cfg = load()
        batches = Batches(type(cfg)(**{**cfg.__dict__, "batch_chunk_rows": 4}))
        first = batches.register(event)
        batches.process_chunk(only_chunk({**first, "chunks": first["chunks"][:1]}))
        again = batches.register(event)
        # The same plan, and the counts of the chunk already applied are kept.
        assert again["chunks"] == first["chunks"] and len(first["chunks"]) == 3
        assert batches.batch_view("rr")["accepted"] == 4
        batches.finalize(process_chunks(batches, again))
        view = batches.batch_view("rr")
        assert (view["status"], view["total_rows"], view["accepted"]) == ("COMPLETED", 9, 9)


class TestTaskErrors:
    @pytest.mark.parametrize(
        ("code", "status"),
        [("InternalError", 500), ("SlowDown", 503), ("ThrottlingException", 400)],
    )
    def test_an_aws_call_a_retry_can_fix_leaves_a_task_as_transient(self, world, code, status):
        """... once the task's own tries of that call are spent (then Step Functions retries)."""
        from handlers import batch_tasks
        from payments.errors import TransientError

        key = "incoming/t.csv"
        version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=b"payment_id\n")
        failures = inject_failures(
            aws.client("s3"), "GetObject", times=aws.PATIENT_ATTEMPTS, code=code, status=status
        )
        state = {"bucket": world.bucket, "key": key, "version_id": version["VersionId"]}
        with pytest.raises(TransientError):
            batch_tasks.handler({"task": "register", "state": state}, LambdaContext("tasks"))
        assert failures["injected"] == aws.PATIENT_ATTEMPTS

    @pytest.mark.parametrize(
        "failure",
        ["ThrottlingException", "InternalServerError", "ReadTimeoutError", "ConnectionClosedError"],
    )
    def test_a_chunk_whose_calls_each_fail_once_completes_in_one_attempt(self, world, failure):
        """Every call the chunk makes fails once (after the SDK's retries) and the task still
        completes, each row counted once: a task of hundreds of calls does not fail on one."""
        from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
        from handlers import batch_tasks

        rows = "".join(f"f{i},1.00,USD\n" for i in range(120))
        key = "incoming/f.csv"
        body = ("payment_id,amount,currency\n" + rows).encode()
        version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)
        state = {"bucket": world.bucket, "key": key, "version_id": version["VersionId"]}
        context = LambdaContext("tasks")
        state = batch_tasks.handler({"task": "register", "state": state}, context)

        failed: set[tuple] = set()
        calls = itertools.count()
        lock = threading.Lock()

        def fail_each_call_once(model, params, **_):
            # A call and its repeats have the same operation, path, query, body and range (but
            # for the token botocore draws for each TransactWriteItems).
            body = params.get("body")
            if model.name == "TransactWriteItems":
                body = {**json.loads(body), "ClientRequestToken": None}
            call = (
                model.name,
                params.get("url_path"),
                repr(params.get("query_string")),
                repr(body) if isinstance(body, bytes | str | dict) else "a stream",
                params.get("headers", {}).get("Range"),
            )
            with lock:
                if call in failed:
                    return None
                failed.add(call)
                next(calls)
            if failure == "ReadTimeoutError":
                raise ReadTimeoutError(endpoint_url="http://aws")
            if failure == "ConnectionClosedError":
                raise ConnectionClosedError(endpoint_url="http://aws")
            return error_answer(failure, 400 if failure == "ThrottlingException" else 500)

        hooked = [aws.client(name) for name in ("dynamodb", "s3", "sqs")]
        for client in hooked:
            client.meta.events.register("before-call", fail_each_call_once)
        try:
            accepted = 0
            for chunk in state["chunks"]:
                task = {"task": "process_chunk", "state": {**state, "chunk": chunk}}
                accepted += batch_tasks.handler(task, context)["counts"]["accepted"]
            assert accepted == 120
            done = batch_tasks.handler({"task": "finalize", "state": state}, context)
        finally:
            for client in hooked:
                client.meta.events.unregister("before-call", fail_each_call_once)
        assert next(calls) > 20  # reads, 25-row transactions, 10-message sends, counts, report
        assert (done["status"], done["accepted"], done["total_rows"]) == ("COMPLETED", 120, 120)
        assert len(world.payments()) == 120
        assert len(world.receive_all()) >= 120

    def test_a_permanent_aws_error_is_not_retried(self, world):
        from botocore.exceptions import ClientError
        from handlers import batch_tasks

        key = "incoming/t.csv"
        version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=b"payment_id\n")
        inject_failures(aws.client("s3"), "GetObject", times=1, code="AccessDenied", status=403)
        state = {"bucket": world.bucket, "key": key, "version_id": version["VersionId"]}
        with pytest.raises(ClientError):
            batch_tasks.handler({"task": "register", "state": state}, LambdaContext("tasks"))


class TestSweepBacklog:
    def test_a_payment_waiting_in_a_backlog_is_queued_once_per_threshold_not_per_run(self, world):
        submit(payment_id="slow")
        world.receive_all()  # its message is lost
        cfg = load()
        later = datetime.now(UTC) + timedelta(seconds=cfg.stuck_after_seconds + 60)
        assert Sweeper(cfg).run(now=later).requeued == ["slow"]
        # The next runs within a threshold of that sweep leave it alone.
        assert Sweeper(cfg).run(now=later + timedelta(seconds=60)).requeued == []
        assert len(world.receive_all()) == 1
        after = later + timedelta(seconds=cfg.stuck_after_seconds + 60)
        assert Sweeper(cfg).run(now=after).requeued == ["slow"]
