"""The DynamoDB Streams poller (``localcloud/services/dynamodb_streams/poller.py``) runs stream
event source mappings as Lambda does: order, batches, partial failures, retries, bisection, record
age, the on-failure destination. Each test would fail on moto as it ships, which invokes the
function inside the write with every record of the shard and then empties it."""

from __future__ import annotations

import threading
import time

import pytest
from localcloud_support import REGION, recorded, wait_for
from streams_support import (
    HANDLER,
    batches,
    consumer,
    delivered,
    failures,
    put,
    read_all,
    shard_id,
    stream_table,
)

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-streams-poller")


class TestDelivery:
    def test_a_write_returns_before_the_function_has_run(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "not-inline")
        started = time.monotonic()
        put(cloud, s.table, "slow-1", "slow", seconds={"N": "2"})
        assert time.monotonic() - started < 1.0
        assert wait_for(lambda: delivered(s)) == ["slow-1"]

    def test_every_record_reaches_the_function_once_in_shard_order(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "in-order", BatchSize=25)
        writers = [
            threading.Thread(
                target=lambda w=w: [put(cloud, s.table, f"w{w}-{i}") for i in range(40)]
            )
            for w in range(4)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        wait_for(lambda: len(delivered(s)) >= 160, timeout=30)
        time.sleep(0.3)  # nothing more may come
        records = [r for e in recorded(s.record_file) for r in e["Records"]]
        sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert sequence == sorted(set(sequence))
        assert sorted(delivered(s)) == sorted(f"w{w}-{i}" for w in range(4) for i in range(40))
        assert all(len(batch) <= 25 for batch in batches(s))
        # Each writer's own items arrive in the order it wrote them.
        for w in range(4):
            mine = [pk for pk in delivered(s) if pk.startswith(f"w{w}-")]
            assert mine == [f"w{w}-{i}" for i in range(40)]

    def test_records_carry_what_lambda_puts_in_a_stream_event(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "shape", view="NEW_AND_OLD_IMAGES")
        put(cloud, s.table, "p-1")
        cloud.client("dynamodb").update_item(
            TableName=s.table,
            Key={"pk": {"S": "p-1"}},
            UpdateExpression="SET amount = :a",
            ExpressionAttributeValues={":a": {"N": "12.5"}},
        )
        cloud.client("dynamodb").delete_item(TableName=s.table, Key={"pk": {"S": "p-1"}})
        wait_for(lambda: len(delivered(s)) == 3)
        insert, modify, remove = [r for e in recorded(s.record_file) for r in e["Records"]]
        for record in (insert, modify, remove):
            assert record["eventVersion"] == "1.1"
            assert (record["eventSource"], record["awsRegion"]) == ("aws:dynamodb", REGION)
            assert record["eventSourceARN"] == s.arn
            assert record["eventID"]
            body = record["dynamodb"]
            assert body["Keys"] == {"pk": {"S": "p-1"}}
            assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
            assert isinstance(body["ApproximateCreationDateTime"], int)
            assert abs(body["ApproximateCreationDateTime"] - time.time()) < 60
            assert body["SizeBytes"] > 0
        assert [r["eventName"] for r in (insert, modify, remove)] == ["INSERT", "MODIFY", "REMOVE"]
        assert "OldImage" not in insert["dynamodb"]
        assert modify["dynamodb"]["OldImage"] == insert["dynamodb"]["NewImage"]
        assert modify["dynamodb"]["NewImage"]["amount"] == {"N": "12.5"}
        assert "NewImage" not in remove["dynamodb"]
        assert remove["dynamodb"]["OldImage"] == modify["dynamodb"]["NewImage"]

    def test_new_image_view_has_no_old_image(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "new-image")
        put(cloud, s.table, "p-1")
        put(cloud, s.table, "p-1", mode="changed")
        wait_for(lambda: len(delivered(s)) == 2)
        records = [r for e in recorded(s.record_file) for r in e["Records"]]
        assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
        assert all("OldImage" not in r["dynamodb"] for r in records)
        assert records[1]["dynamodb"]["NewImage"]["mode"] == {"S": "changed"}

    def test_the_batching_window_gathers_records_into_one_invocation(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "window", BatchSize=10, MaximumBatchingWindowInSeconds=1)
        for i in range(5):
            put(cloud, s.table, f"p-{i}")
        wait_for(lambda: delivered(s))
        time.sleep(0.5)
        assert batches(s) == [[f"p-{i}" for i in range(5)]]

    def test_a_full_batch_does_not_wait_for_the_window(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "full", BatchSize=3, MaximumBatchingWindowInSeconds=20)
        for i in range(3):
            put(cloud, s.table, f"p-{i}")
        assert wait_for(lambda: batches(s), timeout=5) == [["p-0", "p-1", "p-2"]]

    def test_latest_starts_after_what_was_written_before_the_mapping(self, cloud, tmp_path):
        arn = stream_table(cloud, "latest")
        put(cloud, "latest", "before")
        record_file = tmp_path / "latest.jsonl"
        cloud.create_function(
            "latest", HANDLER, Environment={"Variables": {"RECORD_FILE": str(record_file)}}
        )
        cloud.client("lambda").create_event_source_mapping(
            EventSourceArn=arn, FunctionName="latest", StartingPosition="LATEST"
        )
        put(cloud, "latest", "after")
        events = wait_for(lambda: recorded(record_file))
        time.sleep(0.3)
        pks = [
            r["dynamodb"]["Keys"]["pk"]["S"] for e in recorded(record_file) for r in e["Records"]
        ]
        assert events and pks == ["after"]

    def test_a_disabled_mapping_delivers_nothing_until_enabled(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "disabled", Enabled=False)
        put(cloud, s.table, "p-1")
        time.sleep(1.5)
        assert delivered(s) == []
        lam = cloud.client("lambda")
        (mapping,) = lam.list_event_source_mappings(FunctionName=s.function)["EventSourceMappings"]
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
        assert wait_for(lambda: delivered(s), timeout=5) == ["p-1"]


class TestFailures:
    def test_partial_failure_resumes_at_the_lowest_failed_record(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "partial", BatchSize=10, MaximumBatchingWindowInSeconds=1)
        for pk, mode in [("a", "ok"), ("b", "ok"), ("c", "fail-once"), ("d", "ok")]:
            put(cloud, s.table, pk, mode)
        put(cloud, s.table, "e", "fail-once")
        wait_for(lambda: len(batches(s)) >= 2)
        time.sleep(0.5)
        # c, the lowest failed record, is where the retry starts; a and b are done.
        assert batches(s) == [["a", "b", "c", "d", "e"], ["c", "d", "e"]]
        assert failures(cloud, s) == []

    def test_without_report_batch_item_failures_the_response_is_ignored(self, cloud, tmp_path):
        s = consumer(
            cloud,
            tmp_path,
            "no-report",
            BatchSize=10,
            MaximumBatchingWindowInSeconds=1,
            FunctionResponseTypes=[],
        )
        put(cloud, s.table, "a", "fail")
        put(cloud, s.table, "b")
        wait_for(lambda: delivered(s))
        time.sleep(0.5)
        assert batches(s) == [["a", "b"]]

    def test_an_unknown_item_identifier_fails_the_whole_batch(self, cloud, tmp_path):
        s = consumer(
            cloud, tmp_path, "bad-id", MaximumRetryAttempts=1, MaximumBatchingWindowInSeconds=1
        )
        source = HANDLER + (
            "\n_h = handler\n"
            "def handler(event, context):\n"
            "    _h(event, context)\n"
            "    return {'batchItemFailures': [{'itemIdentifier': 'not-a-sequence-number'}]}\n"
        )
        cloud.client("lambda").update_function_code(FunctionName=s.function, ZipFile=_zip(source))
        put(cloud, s.table, "a")
        (failure,) = wait_for(lambda: failures(cloud, s), timeout=10)
        assert batches(s) == [["a"], ["a"]]
        assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"

    def test_a_batch_that_keeps_failing_goes_to_the_on_failure_destination(self, cloud, tmp_path):
        s = consumer(
            cloud,
            tmp_path,
            "always-fails",
            BatchSize=10,
            MaximumBatchingWindowInSeconds=1,
            MaximumRetryAttempts=2,
        )
        for pk, mode in [("a", "ok"), ("b", "raise"), ("c", "ok")]:
            put(cloud, s.table, pk, mode)
        (failure,) = wait_for(lambda: failures(cloud, s), timeout=10)
        # The first invocation and two retries, each with the whole batch.
        assert batches(s) == [["a", "b", "c"]] * 3
        sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in read_all(s)]
        assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert failure["requestContext"]["approximateInvokeCount"] == 3
        assert failure["requestContext"]["functionArn"].endswith(f":function:{s.function}")
        assert failure["responseContext"]["functionError"] == "Unhandled"
        assert failure["version"] == "1.0"
        info = failure["DDBStreamBatchInfo"]
        assert info["batchSize"] == 3
        assert info["streamArn"] == s.arn
        assert info["shardId"] == shard_id(cloud, s.arn)
        assert (int(info["startSequenceNumber"]), int(info["endSequenceNumber"])) == (
            sequence[0],
            sequence[-1],
        )
        assert info["approximateArrivalOfFirstRecord"].endswith("Z")
        # The shard moves on past the discarded batch.
        put(cloud, s.table, "d")
        wait_for(lambda: delivered(s)[-1:] == ["d"])

    def test_bisection_isolates_the_failing_record_without_using_up_retries(self, cloud, tmp_path):
        s = consumer(
            cloud,
            tmp_path,
            "bisect",
            BatchSize=10,
            MaximumBatchingWindowInSeconds=1,
            BisectBatchOnFunctionError=True,
            MaximumRetryAttempts=1,
        )
        for pk, mode in [("a", "ok"), ("b", "ok"), ("c", "raise"), ("d", "ok")]:
            put(cloud, s.table, pk, mode)
        (failure,) = wait_for(lambda: failures(cloud, s), timeout=10)
        wait_for(lambda: delivered(s)[-1:] == ["d"])
        # Two halves; the failing half split again; c tried once and retried once.
        assert batches(s) == [["a", "b", "c", "d"], ["a", "b"], ["c", "d"], ["c"], ["c"], ["d"]]
        info = failure["DDBStreamBatchInfo"]
        assert info["batchSize"] == 1
        assert failure["requestContext"]["approximateInvokeCount"] == 2

    def test_records_past_the_maximum_age_are_discarded(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "too-old", MaximumRecordAgeInSeconds=1)
        put(cloud, s.table, "a", "slow-raise", seconds={"N": "0.4"})
        (failure,) = wait_for(lambda: failures(cloud, s), timeout=10)
        assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
        assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
        # Retries are unlimited; only the age stopped them.
        assert len(batches(s)) >= 2

    def test_a_function_timeout_fails_the_batch(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "timeout", MaximumRetryAttempts=0)
        cloud.client("lambda").update_function_configuration(FunctionName=s.function, Timeout=1)
        put(cloud, s.table, "a", "slow", seconds={"N": "3"})
        (failure,) = wait_for(lambda: failures(cloud, s), timeout=10)
        assert failure["requestContext"]["approximateInvokeCount"] == 1


def _zip(source: str) -> bytes:
    from localcloud_support import handler_zip

    return handler_zip(source)
