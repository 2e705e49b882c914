"""Queue consumer and batch tasks against moto: transitions, replays, faults, accounting."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from handlers import processor
from handlers.common import settings as runtime_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import aws, env
from payments.batch import ROWS_PER_TRANSACTION, WRITE_WORKERS, Batches
from payments.batch import plan as batch_plan
from payments.config import load
from payments.errors import NotFoundError, PaymentError, TransientError
from payments.service import Payments
from payments.validation import validate_payment

from tests.functional.batch_driver import chunk_inputs, only_chunk, process_chunks
from tests.functional.world import CallCounter, inject_failures, sqs_event


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
        events = world.events()  # one per audit entry: RECEIVED, PROCESSING, COMPLETED
        assert sorted(e["event_id"] for e in events) == sorted(
            f"p{i}#{v}" for i in range(5) for v in (1, 2, 3)
        )

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
        # The batch's transaction loses, and then the payment's own one does too.
        inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=2, parsed=parsed)
        assert len(deliver(world, context)["batchItemFailures"]) == 1
        assert deliver(world, context) == {"batchItemFailures": []}
        assert Payments(runtime_settings()).get("p1")["status"] == "COMPLETED"
        assert len(world.audit()) == 3

    def test_persistent_throttling_sends_the_message_to_the_dlq(self, world, context):
        submit(payment_id="p1")
        inject_failures(aws.client("dynamodb"), "BatchGetItem", times=100)  # the batch's read
        inject_failures(aws.client("dynamodb"), "GetItem", times=100)  # and the payment's own
        for _ in range(4):
            deliver(world, context)
        dead = world.receive_all(world.dlq_url)
        assert [json.loads(m["Body"]) for m in dead] == [{"payment_id": "p1"}]


class TestProcessingABatchTogether:
    """The processor handles a queue batch in a few calls (``Payments.process_many``) and must
    reach exactly what processing its messages one at a time would."""

    def test_ten_payments_cost_one_read_and_one_transaction_per_step(self, world, context):
        for i in range(10):
            submit(payment_id=f"t{i}", amount="1000000.01" if i == 3 else "10.00")
        counter = CallCounter().attach(aws.client("dynamodb"))
        assert deliver(world, context) == {"batchItemFailures": []}
        assert counter.calls == {"dynamodb:BatchGetItem": 1, "dynamodb:TransactWriteItems": 2}
        payments = {p["payment_id"]: p for p in world.payments()}
        assert {pid: p["status"] for pid, p in payments.items()} == {
            f"t{i}": "FAILED" if i == 3 else "COMPLETED" for i in range(10)
        }
        assert payments["t3"]["reason"] == "LIMIT_EXCEEDED"
        assert len(world.audit()) == 30

    def test_the_mapping_batch_of_fifty_is_three_calls(self, world):
        from lib.triggers import PROCESSOR_BATCH_SIZE

        ids = [f"f{i}" for i in range(PROCESSOR_BATCH_SIZE)]
        for payment_id in ids:
            submit(payment_id=payment_id)
        counter = CallCounter().attach(aws.client("dynamodb"))
        outcome = Payments(runtime_settings()).process_many(ids)
        assert outcome == dict.fromkeys(ids, "COMPLETED")
        assert counter.calls == {"dynamodb:BatchGetItem": 1, "dynamodb:TransactWriteItems": 2}

    def test_a_timed_out_batch_transaction_falls_back_one_by_one(self, world):
        """The batch's transaction commits but its answer is lost (a read timeout): each payment
        then finds its step made and carries on alone; nothing is done twice."""
        from botocore.exceptions import ReadTimeoutError

        ids = [f"r{i}" for i in range(5)]
        for payment_id in ids:
            submit(payment_id=payment_id)
        client = aws.client("dynamodb")
        lost = []

        def lose_the_answer(http_response, **_):
            if not lost:
                lost.append(True)
                raise ReadTimeoutError(endpoint_url="http://dynamodb")

        client.meta.events.register("after-call.dynamodb.TransactWriteItems", lose_the_answer)
        try:
            outcome = Payments(runtime_settings()).process_many(ids)
        finally:
            client.meta.events.unregister("after-call.dynamodb.TransactWriteItems", lose_the_answer)
        assert lost and outcome == dict.fromkeys(ids, "COMPLETED")
        assert len(world.audit()) == 15  # RECEIVED, PROCESSING, COMPLETED each, once

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        states=st.lists(
            st.sampled_from(["missing", "RECEIVED", "PROCESSING", "COMPLETED", "over limit"]),
            min_size=1,
            max_size=12,
        ),
        repeated=st.lists(st.integers(0, 11), max_size=3),
        racer=st.none() | st.tuples(st.integers(0, 11), st.integers(1, 4)),
    )
    def test_the_outcome_is_that_of_one_message_at_a_time(self, world, states, repeated, racer):
        """Whatever the payments' states, with redelivered ids in the batch, and with another
        worker moving one payment just before the batch's n-th transaction."""
        service = Payments(runtime_settings())
        prefix = f"g{next(_batch_numbers)}-"
        ids = [f"{prefix}{i}" for i in range(len(states))]
        for payment_id, state in zip(ids, states, strict=True):
            if state == "missing":
                continue
            submit(payment_id=payment_id, amount="1000000.01" if state == "over limit" else "1")
            if state in ("PROCESSING", "COMPLETED"):
                item = service.repo.get_payment(payment_id)
                service.repo.transact(service._next_step(item).ops)
            if state == "COMPLETED":
                service.process(payment_id)
        batch = ids + [ids[i % len(ids)] for i in repeated]

        calls = itertools.count(1)
        racing = [False]

        def another_worker(**_):
            if racer is None or racing[0] or next(calls) != racer[1]:
                return
            racing[0] = True
            try:
                item = service.repo.get_payment(ids[racer[0] % len(ids)])
                step = service._next_step(item) if item else None
                if step is not None:
                    service.repo.transact(step.ops)
            finally:
                racing[0] = False

        client = aws.client("dynamodb")
        client.meta.events.register("before-call.dynamodb.TransactWriteItems", another_worker)
        try:
            outcome = service.process_many(batch)
        finally:
            client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", another_worker)

        assert set(outcome) == set(batch)
        for payment_id, state in zip(ids, states, strict=True):
            if state == "missing":
                assert isinstance(outcome[payment_id], NotFoundError)
                continue
            final = "FAILED" if state == "over limit" else "COMPLETED"
            assert outcome[payment_id] == final
            stored = service.repo.get_payment(payment_id)
            assert [h["status"] for h in stored["history"]] == ["RECEIVED", "PROCESSING", final]
            assert stored["version"] == 3
            trail = service.repo.audit_trail(f"PAYMENT#{payment_id}")
            assert [a["status"] for a in trail] == ["RECEIVED", "PROCESSING", final]


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
    if not state["done"]:
        process_chunks(batches, state)
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
            batches.process_chunk(only_chunk(state))
        batches.finalize(state)
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
            batches.process_chunk(only_chunk(state))
        faults["left"] = 0
        batches.finalize(process_chunks(batches, state))
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


def rows_csv(ids, amount="1"):
    return b"payment_id,amount,currency\n" + b"".join(
        f"{pid},{amount},USD\n".encode() for pid in ids
    )


def start_batch(world, batch_id, body, *, chunk_rows, workers=WRITE_WORKERS):
    world.s3.put_object(Bucket=world.bucket, Key=f"incoming/{batch_id}.csv", Body=body)
    cfg = load()
    batches = Batches(
        type(cfg)(**{**cfg.__dict__, "batch_chunk_rows": chunk_rows}), workers=workers
    )
    state = batches.register(
        {
            "bucket": world.bucket,
            "key": f"incoming/{batch_id}.csv",
            "batch_id": batch_id,
            "version_id": "null",
        }
    )
    return batches, state


def queued_ids(world):
    return [json.loads(m["Body"])["payment_id"] for m in world.receive_all()]


def transaction_names(params):
    return {
        op["Put"]["Item"]["payment_id"]["S"]
        for op in params.get("TransactItems", [])
        if "Put" in op and "payment_id" in op["Put"]["Item"]
    }


class InFlight:
    """Counts calls in flight at once; each call lingers ``hold`` seconds so overlap shows."""

    def __init__(self, client, operation, *, hold=0.02):
        self.now = self.peak = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self._hold = hold
        service = client.meta.service_model.service_id.hyphenize()
        # First, so an injected fault registered earlier cannot skip the count.
        client.meta.events.register_first(f"before-call.{service}.{operation}", self._enter)
        client.meta.events.register_first(f"after-call.{service}.{operation}", self._leave)

    def _enter(self, **_):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.threads.add(threading.current_thread().name)
        time.sleep(self._hold)

    def _leave(self, **_):
        with self._lock:
            self.now -= 1


class TestParallelChunkWrites:
    """A chunk's transactions and sends run on WRITE_WORKERS threads; results stay exact."""

    def test_transactions_and_sends_overlap_up_to_the_worker_limit(self, world, context):
        transactions = InFlight(aws.client("dynamodb"), "TransactWriteItems")
        sends = InFlight(aws.client("sqs"), "SendMessageBatch")
        workers = 4  # fewer than the 6 transactions and 15 sends, so the limit shows
        ids = [f"w{i:03d}" for i in range(6 * ROWS_PER_TRANSACTION)]
        batches, state = start_batch(
            world, "par", rows_csv(ids), chunk_rows=len(ids), workers=workers
        )
        batches.finalize(process_chunks(batches, state))
        assert 1 < transactions.peak <= workers and 1 < sends.peak <= workers
        assert len(transactions.threads) > 1
        assert counts(batches.batch_view("par")) == (len(ids), len(ids), 0, 0)
        assert sorted(queued_ids(world)) == ids

    def test_the_default_worker_count_fits_the_client_connection_pool(self):
        assert 1 < WRITE_WORKERS <= aws.MAX_POOL_CONNECTIONS
        assert Batches(load()).workers == WRITE_WORKERS

    def test_throttling_on_some_parallel_transactions_is_retried_and_counted_once(
        self, world, context
    ):
        faults = inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=3)
        ids = [f"t{i:03d}" for i in range(5 * ROWS_PER_TRANSACTION)]
        batches, state = start_batch(world, "thr", rows_csv(ids), chunk_rows=len(ids))
        batches.finalize(process_chunks(batches, state))
        assert faults["injected"] == 3
        assert counts(batches.batch_view("thr")) == (125, 125, 0, 0)
        assert len(world.payments()) == 125 and len(world.audit()) == 125 + 1
        assert sorted(queued_ids(world)) == ids

    @pytest.mark.parametrize("workers", [1, WRITE_WORKERS])
    def test_a_conflict_in_one_of_several_parallel_transactions(self, world, context, workers):
        submit(payment_id="c-same", amount="1.00")
        submit(payment_id="c-diff", amount="9.00")
        world.receive_all()  # the API's own messages
        ids = [f"c{i:03d}" for i in range(100)]
        ids[30], ids[80] = "c-same", "c-diff"  # in the 2nd and 4th of 4 transactions
        ids.append("c005")  # repeats line 7 of the file
        batches, state = start_batch(
            world, "cf", rows_csv(ids), chunk_rows=len(ids), workers=workers
        )
        batches.finalize(process_chunks(batches, state))
        view = batches.batch_view("cf")
        assert counts(view) == (101, 98, 1, 2)
        assert view["rejected_rows"] == [
            {
                "line": 82,
                "payment_id": "c-diff",
                "code": "CONFLICT",
                "reason": "payment_id already stored with different content",
            }
        ]
        report = json.loads(
            world.s3.get_object(Bucket=world.bucket, Key=view["report_key"])["Body"].read()
        )
        assert [(r["line"], r["payment_id"]) for r in report["duplicate_rows"]] == [
            (32, "c-same"),
            (102, "c005"),
        ]
        assert len(world.payments()) == 100 and len(world.audit()) == 2 + 98 + 1
        accepted = sorted(set(ids) - {"c-same", "c-diff"})
        # Each accepted row queued exactly once; the duplicate whose stored payment is still
        # RECEIVED (its first queueing may have been lost) is queued again.
        assert sorted(queued_ids(world)) == sorted([*accepted, "c-same"])

    def test_a_failed_transaction_fails_the_chunk_before_any_send_and_the_retry_counts_once(
        self, world, context
    ):
        ids = [f"f{i:03d}" for i in range(4 * ROWS_PER_TRANSACTION)]
        faults = inject_failures(
            aws.client("dynamodb"),
            "TransactWriteItems",
            times=1000,
            when=lambda params: "f060" in transaction_names(params),
        )
        batches, state = start_batch(world, "ft", rows_csv(ids), chunk_rows=len(ids))
        with pytest.raises(TransientError):
            batches.process_chunk(only_chunk(state))
        # Each other transaction committed whole or (cancelled before it started) not at all;
        # nothing was queued or counted.
        stored = {p["payment_id"] for p in world.payments()}
        transactions = [
            set(ids[start : start + ROWS_PER_TRANSACTION])
            for start in range(0, len(ids), ROWS_PER_TRANSACTION)
        ]
        assert all(t <= stored or not t & stored for t in transactions)
        assert not transactions[2] & stored
        assert queued_ids(world) == []
        assert counts(batches.batch_view("ft")) == (0, 0, 0, 0)

        faults["left"] = 0
        batches.finalize(process_chunks(batches, state))
        assert counts(batches.batch_view("ft")) == (100, 100, 0, 0)
        assert len(world.payments()) == 100 and len(world.audit()) == 100 + 1
        assert sorted(queued_ids(world)) == ids

    def test_sqs_entries_failing_in_parallel_sends_are_retried_once_each(self, world, context):
        def odd_entries_failed(params):
            entries = params["Entries"]
            world.sqs.send_message_batch(
                QueueUrl=params["QueueUrl"], Entries=[e for e in entries if int(e["Id"]) % 2 == 0]
            )
            return {
                "Successful": [{"Id": e["Id"]} for e in entries if int(e["Id"]) % 2 == 0],
                "Failed": [
                    {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"}
                    for e in entries
                    if int(e["Id"]) % 2 == 1
                ],
            }

        faults = inject_failures(
            aws.client("sqs"), "SendMessageBatch", times=4, parsed=odd_entries_failed
        )
        ids = [f"q{i:03d}" for i in range(95)]
        batches, state = start_batch(world, "sqp", rows_csv(ids), chunk_rows=len(ids))
        batches.finalize(process_chunks(batches, state))
        assert faults["injected"] == 4
        assert counts(batches.batch_view("sqp")) == (95, 95, 0, 0)
        assert sorted(queued_ids(world)) == ids  # the sent half of each entry is not re-sent

    def test_one_send_that_keeps_failing_fails_the_chunk_and_its_retry_counts_once(
        self, world, context
    ):
        ids = [f"s{i:03d}" for i in range(95)]
        faults = inject_failures(
            aws.client("sqs"),
            "SendMessageBatch",
            times=1000,
            code="ThrottlingException",
            when=lambda params: any("s042" in e["MessageBody"] for e in params["Entries"]),
        )
        batches, state = start_batch(world, "sqf", rows_csv(ids), chunk_rows=len(ids))
        with pytest.raises(TransientError):
            batches.process_chunk(only_chunk(state))
        first = queued_ids(world)
        # None of s042's ten went out; of the other nine sends, those already started when it
        # failed went out whole (the pool cancels the ones not started yet).
        sends = [set(ids[start : start + 10]) for start in range(0, len(ids), 10)]
        assert len(first) == len(set(first))
        assert all(send <= set(first) or not send & set(first) for send in sends)
        assert not sends[4] & set(first)
        faults["left"] = 0
        batches.finalize(process_chunks(batches, state))
        assert counts(batches.batch_view("sqf")) == (95, 95, 0, 0)
        assert sorted(queued_ids(world)) == ids  # re-sent; the consumer is idempotent


def expected_outcomes(body: bytes) -> dict[int, tuple[str, str]]:
    """The contract read sequentially, line by line: line -> (outcome, payment_id or reason)."""
    from payments.csv_reader import read_header, read_rows
    from payments.errors import ValidationError as Invalid

    header = read_header(io.BytesIO(body))
    rows = read_rows(
        io.BytesIO(body[header.data_offset :]),
        columns=header.columns,
        offset=header.data_offset,
        line=header.next_line,
        max_rows=10**6,
    ).rows
    first: dict[str, int] = {}
    expected = {}
    for r in rows:
        try:
            if r.values is None:
                raise Invalid({"row": r.error or ""})
            payment_id = validate_payment(r.values, require_id=True, from_csv=True).payment_id
        except Invalid:
            expected[r.line] = ("REJECT", "")
            continue
        if payment_id in first:
            expected[r.line] = (
                "DUPLICATE",
                f"payment_id already on line {first[payment_id]} of this file",
            )
        else:
            first[payment_id] = r.line
            expected[r.line] = ("ACCEPTED", payment_id)
    return expected


def observed_outcomes(world, batch_id: str, run: str) -> dict[int, tuple[str, str]]:
    observed = {}
    for item in world.table_items(env.PROCESSING_STATUS_TABLE):
        kind = item["sk"].split("#", 1)[0]
        if item["pk"] == f"BATCH#{batch_id}" and kind in ("REJECT", "DUPLICATE"):
            assert int(item["line"]) not in observed, item
            observed[int(item["line"])] = (kind, item["reason"] if kind == "DUPLICATE" else "")
    for payment in world.payments():
        if payment.get("batch_id") == batch_id and payment.get("batch_run") == run:
            line = int(payment["batch_line"])
            assert line not in observed, payment
            observed[line] = ("ACCEPTED", payment["payment_id"])
    return observed


class TestPlannedChunks:
    """Chunks run in any order (the Map) and the outcome of every line is the sequential one."""

    @settings(
        max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        rows=st.lists(
            st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2", "-1", "x"])),
            max_size=12,
        ),
        chunk_rows=st.integers(1, 4),
        order=st.randoms(use_true_random=False),
    )
    def test_duplicates_across_chunks_in_any_order_are_those_of_the_sequential_reading(
        self, world, rows, chunk_rows, order
    ):
        batch_id = f"o{next(_batch_numbers)}"  # fresh ids: nothing stored before this file
        body = b"payment_id,amount,currency\n" + b"".join(
            f"{batch_id}{pid},{amount},USD\n".encode() for pid, amount in rows
        )
        batches, state = start_batch(world, batch_id, body, chunk_rows=chunk_rows)
        chunks = list(range(len(state["chunks"])))
        order.shuffle(chunks)
        batches.finalize(process_chunks(batches, state, order=chunks))
        view = batches.batch_view(batch_id)
        expected = expected_outcomes(body)
        assert observed_outcomes(world, batch_id, "null") == expected
        outcomes = [o for o, _ in expected.values()]
        assert counts(view) == (
            len(rows),
            outcomes.count("ACCEPTED"),
            outcomes.count("REJECT"),
            outcomes.count("DUPLICATE"),
        )
        assert view["status"] == "COMPLETED"

    def test_a_later_chunk_that_runs_first_still_names_the_earlier_line(self, world, context):
        body = rows_csv(["d1", "d2", "d3", "d1", "d2"])
        batches, state = start_batch(world, "late", body, chunk_rows=2)
        assert [c["duplicates"] for c in state["chunks"]] == [0, 1, 1]
        batches.finalize(process_chunks(batches, state, order=[2, 1, 0]))
        view = batches.batch_view("late")
        assert counts(view) == (5, 3, 0, 2)
        duplicates = Batches(load()).repo.row_outcomes("late", "DUPLICATE", "null")
        assert [(int(d["line"]), d["reason"]) for d in duplicates] == [
            (5, "payment_id already on line 2 of this file"),
            (6, "payment_id already on line 3 of this file"),
        ]
        assert sorted(p["payment_id"] for p in world.payments()) == ["d1", "d2", "d3"]

    def test_a_chunk_retried_after_its_counts_are_in_writes_and_sends_nothing(self, world, context):
        batches, state = start_batch(world, "twice", rows_csv(["t1", "t2"]), chunk_rows=5)
        batches.process_chunk(only_chunk(state))
        calls = CallCounter().attach(aws.client("dynamodb"), aws.client("sqs"), aws.client("s3"))
        again = batches.process_chunk(only_chunk(state))
        assert again == {"index": 0, "superseded": False, "counts": None}
        assert dict(calls.calls) == {"dynamodb:GetItem": 2}  # the summary and the marker
        batches.finalize(state)
        assert counts(batches.batch_view("twice")) == (2, 2, 0, 0)
        assert len(world.receive_all()) == 2

    def test_finalize_refuses_a_run_whose_chunks_are_not_all_in(self, world, context):
        batches, state = start_batch(world, "part", rows_csv(["m1", "m2", "m3"]), chunk_rows=2)
        process_chunks(batches, state, order=[1])
        with pytest.raises(PaymentError, match="1 of 2 chunks applied"):
            batches.finalize(state)
        assert batches.batch_view("part")["status"] == "PROCESSING"

    def test_a_timed_out_runs_chunks_add_nothing_and_its_finalize_writes_no_report(
        self, world, context
    ):
        batches, state = start_batch(world, "tout", rows_csv(["u1", "u2"]), chunk_rows=1)
        batches.process_chunk(chunk_inputs(state)[0])
        assert batches.fail("tout", "null", "TIMED_OUT", "the run took too long")
        late = batches.process_chunk(chunk_inputs(state)[1])
        assert late["superseded"] is True
        assert batches.finalize(state)["superseded"] is True
        view = batches.batch_view("tout")
        assert (view["status"], view["reason_code"], counts(view)) == (
            "FAILED",
            "TIMED_OUT",
            (1, 1, 0, 0),
        )
        assert view["report_key"] is None
        assert [p["payment_id"] for p in world.payments()] == ["u1"]

    @pytest.mark.parametrize(
        ("limit", "chunk_rows"), [("MAX_CHUNKS", 1), ("MAX_ROWS", 5)], ids=["chunks", "rows"]
    )
    def test_a_file_with_more_rows_than_one_batch_takes_fails_as_invalid(
        self, world, context, monkeypatch, limit, chunk_rows
    ):
        monkeypatch.setattr(batch_plan, limit, 2)
        body = rows_csv(["g1", "g2", "g3"])
        batches, state = start_batch(world, "big", body, chunk_rows=chunk_rows)
        assert (state["done"], state.get("failed"), "chunks" in state) == (True, True, False)
        view = batches.batch_view("big")
        assert (view["status"], view["reason_code"]) == ("FAILED", "INVALID_FILE")
        assert view["reason"] == (
            "the file has more than 2 rows, the most one batch takes; split it into several files"
        )
        assert world.payments() == []


class TestReuploadWhileAChunkWrites:
    """A corrected file registered while the older run's chunk is between two transactions."""

    def upload(self, world, body: bytes, sequencer: str) -> dict:
        key = "incoming/payroll.csv"
        version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)["VersionId"]
        return {
            "bucket": world.bucket,
            "key": key,
            "batch_id": "payroll",
            "version_id": version,
            "sequencer": sequencer,
        }

    def test_the_older_runs_later_rows_are_neither_stored_nor_queued(self, world, context):
        from tests.functional.model_support import interleave

        ids = [f"emp-{i:02d}" for i in range(ROWS_PER_TRANSACTION + 5)]
        old_body = rows_csv(ids, amount="1000.00")
        new_body = rows_csv(ids, amount="100.00")
        cfg = load()
        batches = Batches(type(cfg)(**{**cfg.__dict__, "batch_chunk_rows": 100}), workers=1)
        old = batches.register(self.upload(world, old_body, "0055AED6DCD90281E5"))
        newer_event = self.upload(world, new_body, "0055AED6DCD90281E6")
        new: dict = {}

        def corrected_file_registers() -> None:
            new.update(batches.register(newer_event))

        # The first transaction (rows emp-00..emp-24) commits; the corrected file registers
        # before the second one (emp-25..emp-29).
        with interleave(
            aws.client("dynamodb"), "TransactWriteItems", corrected_file_registers, skip=1
        ):
            result = batches.process_chunk(only_chunk(old))
        assert result["superseded"] is True and new["run"] == newer_event["version_id"]
        old_run_queued = queued_ids(world)
        assert sorted(old_run_queued) == ids[:ROWS_PER_TRANSACTION]

        process_chunks(batches, new)
        assert batches.finalize(new)["status"] == "COMPLETED"
        view = batches.batch_view("payroll")
        # The rows the old run wrote while it was current are stored payments with other
        # content (conflicts for the corrected file); the rows it never wrote are the new run's.
        assert counts(view) == (len(ids), 5, ROWS_PER_TRANSACTION, 0)
        payments = {p["payment_id"]: p for p in world.payments()}
        for pid in ids[ROWS_PER_TRANSACTION:]:
            assert (payments[pid]["amount"], payments[pid]["batch_run"]) == (
                100,
                newer_event["version_id"],
            )
        assert sorted(queued_ids(world)) == ids[ROWS_PER_TRANSACTION:]
