"""Streamed tables, a recording function and its mapping, and reading a stream: the helpers of the
DynamoDB Streams and transaction tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from localcloud_support import ACCOUNT_ID, RECORDING_HANDLER, REGION, recorded

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


def read_all(s: Stream) -> list[dict]:
    """Every record the function received, in order, without repeats."""
    seen: dict[str, dict] = {}
    for event in recorded(s.record_file):
        for record in event["Records"]:
            seen.setdefault(record["dynamodb"]["SequenceNumber"], record)
    return list(seen.values())
