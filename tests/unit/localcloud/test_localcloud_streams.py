"""DynamoDB Streams on the patched moto: records kept for readers, and the poller that runs stream
event source mappings as Lambda does (order, batches, partial failures, retries, bisection, record
age, the on-failure destination). Each test would fail on moto as it ships, which invokes the
function inside the write with every record of the shard and then empties it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from localcloud_support import ACCOUNT_ID, RECORDING_HANDLER, REGION, recorded, wait_for

pytestmark = pytest.mark.xdist_group("localcloud-streams")

# Records each batch, then acts on each record's NewImage "mode": "raise" fails the invocation,
# "fail" reports the record in batchItemFailures, "fail-once" does so on its first delivery only,
# "slow" sleeps a while first, "slow-raise" sleeps and then fails the invocation.
HANDLER = (
    RECORDING_HANDLER
    + """
import os, time

def handler(event, context):
    record(event)
    failed = []
    for r in event["Records"]:
        image = r["dynamodb"].get("NewImage", {})
        mode = image.get("mode", {}).get("S", "ok")
        sequence = r["dynamodb"]["SequenceNumber"]
        if mode in ("slow", "slow-raise"):
            time.sleep(float(image["seconds"]["N"]))
        if mode in ("raise", "slow-raise"):
            raise RuntimeError("poison record " + sequence)
        if mode == "fail":
            failed.append(sequence)
        if mode == "fail-once":
            marker = os.path.join(os.environ["MARKER_DIR"], sequence)
            if not os.path.exists(marker):
                open(marker, "w").close()
                failed.append(sequence)
    return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}
"""
)


@dataclass
class Stream:
    table: str
    arn: str
    record_file: Path
    dlq_url: str
    dlq_arn: str
    function: str


def stream_table(cloud, name: str, view: str = "NEW_IMAGE") -> str:
    """A table keyed by ``pk`` with a stream; returns the stream ARN."""
    table = cloud.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    return table["TableDescription"]["LatestStreamArn"]


def consumer(cloud, tmp_path: Path, name: str, *, view: str = "NEW_IMAGE", **mapping) -> Stream:
    """A streamed table, the recording function, an on-failure queue and the mapping."""
    arn = stream_table(cloud, name, view)
    record_file = tmp_path / f"{name}.jsonl"
    markers = tmp_path / f"{name}-markers"
    markers.mkdir()
    dlq_url, dlq_arn = cloud.create_queue(f"{name}-failures")
    cloud.create_function(
        name,
        HANDLER,
        Timeout=10,
        Environment={"Variables": {"RECORD_FILE": str(record_file), "MARKER_DIR": str(markers)}},
    )
    settings = {
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 100,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": dlq_arn}},
        **mapping,
    }
    cloud.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, **settings
    )
    return Stream(name, arn, record_file, dlq_url, dlq_arn, name)


def put(cloud, table: str, pk: str, mode: str = "ok", **extra: dict) -> None:
    item = {"pk": {"S": pk}, "mode": {"S": mode}, **extra}
    cloud.client("dynamodb").put_item(TableName=table, Item=item)


def batches(stream: Stream) -> list[list[str]]:
    """The pk of each record, batch by batch, in the order the function received them."""
    return [
        [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        for event in recorded(stream.record_file)
    ]


def delivered(stream: Stream) -> list[str]:
    return [pk for batch in batches(stream) for pk in batch]


def failures(cloud, stream: Stream) -> list[dict]:
    """The invocation records in the on-failure queue, left visible for the next look."""
    messages = cloud.client("sqs").receive_message(
        QueueUrl=stream.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def shard(table: str):
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT_ID][REGION].tables[table].stream_shard


def shard_id(cloud, arn: str) -> str:
    description = cloud.client("dynamodbstreams").describe_stream(StreamArn=arn)
    return description["StreamDescription"]["Shards"][0]["ShardId"]


def read_stream(cloud, arn: str, iterator_type: str = "TRIM_HORIZON", **position) -> list[dict]:
    streams = cloud.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard_id(cloud, arn), ShardIteratorType=iterator_type, **position
    )["ShardIterator"]
    return streams.get_records(ShardIterator=iterator)["Records"]


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


def read_all(s: Stream) -> list[dict]:
    """Every record the function received, in order, without repeats."""
    seen: dict[str, dict] = {}
    for event in recorded(s.record_file):
        for record in event["Records"]:
            seen.setdefault(record["dynamodb"]["SequenceNumber"], record)
    return list(seen.values())


def _zip(source: str) -> bytes:
    from localcloud_support import handler_zip

    return handler_zip(source)


class TestTransactions:
    def test_a_cancelled_transaction_writes_no_record_and_a_committed_one_each_once(
        self, cloud, tmp_path
    ):
        s = consumer(cloud, tmp_path, "transactions")
        put(cloud, s.table, "existing")
        put(cloud, s.table, "guard")
        ddb = cloud.client("dynamodb")
        with pytest.raises(ClientError) as cancelled:
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": s.table, "Item": {"pk": {"S": "cancelled"}}}},
                    {
                        "Update": {
                            "TableName": s.table,
                            "Key": {"pk": {"S": "existing"}},
                            "UpdateExpression": "SET #mode = :m",
                            "ExpressionAttributeNames": {"#mode": "mode"},
                            "ExpressionAttributeValues": {":m": {"S": "changed"}},
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": s.table,
                            "Key": {"pk": {"S": "guard"}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": s.table, "Item": {"pk": {"S": f"committed-{i}"}}}}
                for i in range(3)
            ]
        )
        wait_for(lambda: len(delivered(s)) >= 5)
        time.sleep(0.5)
        assert delivered(s) == ["existing", "guard", "committed-0", "committed-1", "committed-2"]
        assert "Item" not in ddb.get_item(TableName=s.table, Key={"pk": {"S": "cancelled"}})
        existing = ddb.get_item(TableName=s.table, Key={"pk": {"S": "existing"}})["Item"]
        assert existing["mode"] == {"S": "ok"}

    def test_an_update_that_creates_an_item_writes_one_record(self, cloud):
        arn = stream_table(cloud, "upsert")
        cloud.client("dynamodb").update_item(
            TableName="upsert",
            Key={"pk": {"S": "new"}},
            UpdateExpression="SET amount = :a",
            ExpressionAttributeValues={":a": {"N": "1"}},
        )
        (record,) = read_stream(cloud, arn)
        assert record["eventName"] == "INSERT"
        assert record["dynamodb"]["NewImage"] == {"pk": {"S": "new"}, "amount": {"N": "1"}}

    def test_a_write_that_changes_nothing_writes_no_record(self, cloud):
        arn = stream_table(cloud, "unchanged")
        put(cloud, "unchanged", "p-1")
        put(cloud, "unchanged", "p-1")
        assert [r["eventName"] for r in read_stream(cloud, arn)] == ["INSERT"]

    def test_a_transaction_does_not_copy_the_tables_it_touches(self, cloud, monkeypatch):
        from moto.dynamodb.models.table import Table

        copies = []
        monkeypatch.setattr(
            Table, "__deepcopy__", lambda self, memo: copies.append(self.name), raising=False
        )
        cloud.client("dynamodb").create_table(
            TableName="big",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        cloud.client("dynamodb").transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "big", "Item": {"pk": {"S": f"p-{i}"}}}} for i in range(25)
            ]
        )
        assert copies == []

    def test_plain_writes_during_cancelled_transactions_are_kept_with_their_records(self, cloud):
        arn = stream_table(cloud, "busy")
        ddb = cloud.client("dynamodb")
        # Enough items that a copy of the table takes a while, as in a real batch.
        for start in range(0, 1500, 25):
            ddb.batch_write_item(
                RequestItems={
                    "busy": [
                        {"PutRequest": {"Item": {"pk": {"S": f"old-{i}"}}}}
                        for i in range(start, start + 25)
                    ]
                }
            )
        put(cloud, "busy", "guard")

        def cancelled_transactions() -> None:
            client = cloud.client("dynamodb")
            for i in range(25):
                with pytest.raises(ClientError):
                    client.transact_write_items(
                        TransactItems=[
                            {"Put": {"TableName": "busy", "Item": {"pk": {"S": f"tx-{i}-{n}"}}}}
                            for n in range(3)
                        ]
                        + [
                            {
                                "ConditionCheck": {
                                    "TableName": "busy",
                                    "Key": {"pk": {"S": "guard"}},
                                    "ConditionExpression": "attribute_not_exists(pk)",
                                }
                            }
                        ]
                    )

        def plain_writes() -> None:
            client = cloud.client("dynamodb")
            for i in range(100):
                client.put_item(TableName="busy", Item={"pk": {"S": f"plain-{i}"}})

        threads = [
            threading.Thread(target=cancelled_transactions),
            threading.Thread(target=plain_writes),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        paginator = ddb.get_paginator("scan")
        stored = {
            i["pk"]["S"] for page in paginator.paginate(TableName="busy") for i in page["Items"]
        }
        assert {pk for pk in stored if not pk.startswith("old-")} == {
            "guard",
            *(f"plain-{i}" for i in range(100)),
        }
        streams = cloud.client("dynamodbstreams")
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id(cloud, arn), ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        written = []
        while True:
            page = streams.get_records(ShardIterator=iterator)
            written += [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page["NextShardIterator"]
        assert [pk for pk in written if not pk.startswith("old-")] == [
            "guard",
            *(f"plain-{i}" for i in range(100)),
        ]

    def test_a_query_never_sees_an_update_half_way(self, cloud, monkeypatch):
        from moto.dynamodb.models.table import Table

        ddb = cloud.client("dynamodb")
        ddb.create_table(
            TableName="sparse",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "pending", "AttributeType": "S"},
                {"AttributeName": "since", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "pending-index",
                    "KeySchema": [
                        {"AttributeName": "pending", "KeyType": "HASH"},
                        {"AttributeName": "since", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(3):
            item = {"pk": {"S": f"p-{i}"}, "pending": {"S": "yes"}, "since": {"S": str(i)}}
            ddb.put_item(TableName="sparse", Item=item)
        # The query stops between selecting the index's items and sorting them; an update that
        # removes the index key from one of them gets a second to run meanwhile.
        in_query, updated = threading.Event(), threading.Event()
        sort = Table.sorted_items

        def paused_sort(self, *args, **kwargs):
            if self.name == "sparse" and not in_query.is_set():
                in_query.set()
                updated.wait(1.0)
            return sort(self, *args, **kwargs)

        monkeypatch.setattr(Table, "sorted_items", paused_sort)
        outcome: dict[str, object] = {}

        def query() -> None:
            try:
                outcome["items"] = cloud.client("dynamodb").query(
                    TableName="sparse",
                    IndexName="pending-index",
                    KeyConditionExpression="pending = :p",
                    ExpressionAttributeValues={":p": {"S": "yes"}},
                )["Items"]
            except ClientError as error:
                outcome["error"] = error

        reader = threading.Thread(target=query)
        reader.start()
        assert in_query.wait(5)
        cloud.client("dynamodb").update_item(
            TableName="sparse", Key={"pk": {"S": "p-1"}}, UpdateExpression="REMOVE pending"
        )
        updated.set()
        reader.join()
        assert "error" not in outcome
        assert len(outcome["items"]) == 3  # the update came after the query


class TestStreamsApi:
    def test_get_records_reads_every_write_with_ascending_sequence_numbers(self, cloud):
        arn = stream_table(cloud, "readable")
        for i in range(5):
            put(cloud, "readable", f"p-{i}")
        records = read_stream(cloud, arn)
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == [f"p-{i}" for i in range(5)]
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert numbers == sorted(set(numbers))
        after = read_stream(cloud, arn, "AFTER_SEQUENCE_NUMBER", SequenceNumber=str(numbers[2]))
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in after] == ["p-3", "p-4"]
        assert read_stream(cloud, arn, "LATEST") == []

    def test_next_iterator_continues_where_the_last_read_ended(self, cloud):
        arn = stream_table(cloud, "paged")
        for i in range(3):
            put(cloud, "paged", f"p-{i}")
        streams = cloud.client("dynamodbstreams")
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id(cloud, arn), ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        first = streams.get_records(ShardIterator=iterator, Limit=2)
        second = streams.get_records(ShardIterator=first["NextShardIterator"], Limit=2)
        assert [len(first["Records"]), len(second["Records"])] == [2, 1]
        put(cloud, "paged", "p-3")
        third = streams.get_records(ShardIterator=second["NextShardIterator"])
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in third["Records"]] == ["p-3"]

    def test_what_every_mapping_has_read_is_dropped_and_reads_of_it_fail(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "trimmed")
        first_number = int(
            cloud.client("dynamodbstreams").describe_stream(StreamArn=s.arn)["StreamDescription"][
                "Shards"
            ][0]["SequenceNumberRange"]["StartingSequenceNumber"]
        )
        for i in range(30):
            put(cloud, s.table, f"p-{i}")
        wait_for(lambda: len(delivered(s)) == 30)
        assert wait_for(lambda: len(shard(s.table).items) == 0)
        first = read_all(s)[0]["dynamodb"]["SequenceNumber"]
        with pytest.raises(ClientError) as trimmed:
            read_stream(cloud, s.arn, "AT_SEQUENCE_NUMBER", SequenceNumber=first)
        assert trimmed.value.response["Error"]["Code"] == "TrimmedDataAccessException"
        assert read_stream(cloud, s.arn) == []
        put(cloud, s.table, "later")
        # The shard's range still starts where it started.
        description = cloud.client("dynamodbstreams").describe_stream(StreamArn=s.arn)
        shard_range = description["StreamDescription"]["Shards"][0]["SequenceNumberRange"]
        assert int(shard_range["StartingSequenceNumber"]) == first_number
        wait_for(lambda: delivered(s)[-1:] == ["later"])

    def test_a_slow_mapping_holds_records_for_itself(self, cloud, tmp_path):
        s = consumer(cloud, tmp_path, "shared", Enabled=False)
        for i in range(3):
            put(cloud, s.table, f"p-{i}")
        time.sleep(1.2)  # the poller has looked and trimmed what it could
        assert len(shard(s.table).items) == 3
        assert len(read_stream(cloud, s.arn)) == 3

    def test_an_unknown_shard_is_not_found(self, cloud):
        arn = stream_table(cloud, "no-shard")
        with pytest.raises(ClientError) as missing:
            cloud.client("dynamodbstreams").get_shard_iterator(
                StreamArn=arn,
                ShardId="shardId-00000000000000000000-00000000",
                ShardIteratorType="TRIM_HORIZON",
            )
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
