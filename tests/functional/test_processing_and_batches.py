"""Queue consumer and batch tasks against moto: transitions, replays, faults, accounting."""

from __future__ import annotations

import itertools
import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from handlers import processor
from handlers.common import settings as runtime_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import aws
from payments.batch import Batches
from payments.config import load
from payments.service import Payments
from payments.validation import validate_payment

from tests.functional.world import inject_failures, sqs_event


def submit(**fields):
    body = {"amount": "10.00", "currency": "USD", **fields}
    return Payments(runtime_settings()).submit(validate_payment(body))


def deliver(world, context, *, receive=True, messages=None):
    """Receive from the processing queue and hand the batch to the processor handler."""
    if messages is None:  # one receive of up to 10, as the event source mapping does
        messages = world.sqs.receive_message(
            QueueUrl=world.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
    if not messages:
        return {"batchItemFailures": []}
    arn = world.sqs.get_queue_attributes(QueueUrl=world.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    try:
        result = processor.handler(sqs_event(messages, arn), context)
    except BatchProcessingError:
        # Powertools raises when every record failed: Lambda reports an error and SQS makes the
        # whole batch visible again, which is the same as every item failing.
        result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in messages:  # what the event source mapping does with a partial batch response
        if m["MessageId"] not in failed:
            world.sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return result


class TestProcessor:
    @pytest.mark.parametrize(
        ("fields", "status", "reason"),
        [
            ({}, "COMPLETED", None),
            ({"amount": "1000000.01"}, "FAILED", "LIMIT_EXCEEDED"),
            ({"metadata": {"fraud_flag": "true"}}, "FAILED", "FRAUD_SUSPECTED"),
        ],
    )
    def test_processing_rules(self, world, context, fields, status, reason):
        submit(payment_id="p1", **fields)
        assert deliver(world, context) == {"batchItemFailures": []}
        payment = Payments(runtime_settings()).get("p1")
        assert (payment["status"], payment["reason"]) == (status, reason)
        assert [h["status"] for h in payment["history"]] == ["RECEIVED", "PROCESSING", status]

    def test_each_message_delivered_three_times_changes_nothing_twice(self, world, context):
        for i in range(5):
            submit(payment_id=f"p{i}")
        messages = world.sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10)[
            "Messages"
        ]
        for _ in range(3):
            assert deliver(world, context, messages=messages) == {"batchItemFailures": []}
        audit = world.audit()
        assert len(audit) == 5 * 3 and len({(a["entity_id"], a["sk"]) for a in audit}) == 15
        events = world.events()
        assert len(events) == 5 * 2 and len({e["event_id"] for e in events}) == 10

    def test_a_malformed_message_fails_alone(self, world, context):
        submit(payment_id="good")
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody="not json")
        result = deliver(world, context)
        assert len(result["batchItemFailures"]) == 1
        assert Payments(runtime_settings()).get("good")["status"] == "COMPLETED"

    def test_transaction_conflicts_are_retried_by_redelivery(self, world, context):
        submit(payment_id="p1")
        parsed = {
            "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
            "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
        }
        inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=1, parsed=parsed)
        assert len(deliver(world, context)["batchItemFailures"]) == 1
        assert deliver(world, context) == {"batchItemFailures": []}
        assert Payments(runtime_settings()).get("p1")["status"] == "COMPLETED"
        assert len(world.audit()) == 3

    def test_persistent_throttling_sends_the_message_to_the_dlq(self, world, context):
        submit(payment_id="p1")
        inject_failures(aws.client("dynamodb"), "GetItem", times=100)
        for _ in range(4):
            deliver(world, context)
        dead = world.receive_all(world.dlq_url)
        assert [json.loads(m["Body"]) for m in dead] == [{"payment_id": "p1"}]


def run_batch(world, batch_id, body, *, chunk_rows=3, crash_after_store=False):
    """Drive the batch tasks as the workflow does (Register, ProcessChunk loop, Finalize)."""
    world.s3.put_object(Bucket=world.bucket, Key=f"incoming/{batch_id}.csv", Body=body)
    cfg = load()
    batches = Batches(type(cfg)(**{**cfg.__dict__, "batch_chunk_rows": chunk_rows}))
    state = batches.register(
        {
            "bucket": world.bucket,
            "key": f"incoming/{batch_id}.csv",
            "batch_id": batch_id,
            "version_id": "null",
        }
    )
    while not state["done"]:
        state = batches.process_chunk(state)
    batches.finalize(state)
    return batches.batch_view(batch_id)


def counts(view):
    return view["total_rows"], view["accepted"], view["rejected"], view["duplicates"]


class TestBatchChunks:
    def test_conflicting_and_duplicate_rows(self, world, context):
        submit(payment_id="api-same", amount="1.00")
        submit(payment_id="api-diff", amount="1.00")
        body = (
            b"payment_id,amount,currency\n"
            b"api-same,1,USD\napi-diff,2,USD\nnew,3,USD\nnew,3,USD\nnew,4,USD\n"
        )
        view = run_batch(world, "b1", body, chunk_rows=2)
        assert counts(view) == (5, 1, 1, 3)
        assert view["rejected_rows"] == [
            {
                "line": 3,
                "payment_id": "api-diff",
                "code": "CONFLICT",
                "reason": "payment_id already stored with different content",
            }
        ]

    def test_rerunning_a_chunk_does_not_double_count(self, world, context):
        body = b"payment_id,amount,currency\n" + b"".join(
            f"r{i},1,USD\n".encode() for i in range(7)
        )
        world.s3.put_object(Bucket=world.bucket, Key="incoming/rr.csv", Body=body)
        batches = Batches(load())
        state = batches.register(
            {
                "bucket": world.bucket,
                "key": "incoming/rr.csv",
                "batch_id": "rr",
                "version_id": "null",
            }
        )
        for _ in range(3):  # Step Functions retried the same chunk twice
            after = batches.process_chunk(state)
        batches.finalize(after)
        view = batches.batch_view("rr")
        assert counts(view) == (7, 7, 0, 0)
        assert len(world.payments()) == 7 and len(world.audit()) == 7 + 1

    def test_sqs_send_failures_are_retried_per_entry(self, world, context):
        def all_failed(params):
            return {
                "Successful": [],
                "Failed": [
                    {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"}
                    for e in params["Entries"]
                ],
            }

        faults = inject_failures(aws.client("sqs"), "SendMessageBatch", times=2, parsed=all_failed)
        body = b"payment_id,amount,currency\n" + b"".join(
            f"s{i},1,USD\n".encode() for i in range(12)
        )
        view = run_batch(world, "sq", body, chunk_rows=20)
        assert faults["injected"] == 2
        assert counts(view) == (12, 12, 0, 0)
        assert len(world.receive_all()) == 12

    def test_a_chunk_that_cannot_queue_fails_and_its_retry_counts_once(self, world, context):
        faults = inject_failures(
            aws.client("sqs"), "SendMessageBatch", times=50, code="ThrottlingException"
        )
        body = b"payment_id,amount,currency\na,1,USD\nb,1,USD\n"
        world.s3.put_object(Bucket=world.bucket, Key="incoming/cq.csv", Body=body)
        batches = Batches(load())
        state = batches.register(
            {
                "bucket": world.bucket,
                "key": "incoming/cq.csv",
                "batch_id": "cq",
                "version_id": "null",
            }
        )
        from payments.errors import TransientError

        with pytest.raises(TransientError):
            batches.process_chunk(state)
        faults["left"] = 0
        batches.finalize(batches.process_chunk(state))
        assert counts(batches.batch_view("cq")) == (2, 2, 0, 0)
        assert len(world.receive_all()) == 2

    def test_throttled_transactions_are_retried(self, world, context):
        faults = inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=2)
        view = run_batch(world, "th", b"payment_id,amount,currency\na,1,USD\n")
        assert faults["injected"] == 2 and counts(view) == (1, 1, 0, 0)


_batch_numbers = itertools.count()
row = st.tuples(
    st.sampled_from(["p1", "p2", "p3", "", "bad id", "x" * 65]),
    st.sampled_from(["1", "1.00", "2", "-1", "1e3", "abc", "", "0.001", "999999999999.99"]),
    st.sampled_from(["USD", "usd", "JPY", "XXX", ""]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(row, max_size=10), blank_every=st.integers(0, 3))
def test_random_rows_are_accepted_rejected_or_duplicate_never_lost(world, rows, blank_every):
    batch_id = f"h{next(_batch_numbers)}"  # a new file each example, as a new upload would be
    lines = ["payment_id,amount,currency"]
    for i, (pid, amount, currency) in enumerate(rows):
        if blank_every and i % blank_every == 0:
            lines.append("")
        lines.append(f"{pid},{amount},{currency}")
    view = run_batch(world, batch_id, ("\r\n".join(lines) + "\r\n").encode())
    total, accepted, rejected, duplicates = counts(view)
    assert total == len(rows)
    assert accepted + rejected + duplicates == total
    assert len(view["rejected_rows"]) == rejected
