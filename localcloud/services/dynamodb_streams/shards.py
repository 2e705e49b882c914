"""DynamoDB Streams records as a shard holds them, shared by the Streams API and the poller.

moto keeps a table's stream in one ``StreamShard`` whose ``items`` list it fills on every write;
``localcloud.services.dynamodb_streams.api`` replaces how records get there and how the Streams
API reads them, and ``localcloud.services.dynamodb_streams.poller`` runs the stream event source
mappings. This module holds what both sides share: the record as DynamoDB Streams stores it,
reading from a sequence number, and trimming what every consumer has read.

Sequence numbers are integers in moto. ``shard.starting_sequence_number`` is the number of the
oldest record still held (``shard.items[0]``); the shard's original first number, which
DescribeStream reports, is kept in ``FIRST_SEQUENCE_ATTR``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# DynamoDB Streams keeps records 24 hours; records that every mapping has read go sooner.
RETENTION_SECONDS = 24 * 3600

FIRST_SEQUENCE_ATTR = "localcloud_first_sequence_number"

# Set on a stream mapping when it is created: the sequence number it starts reading at.
START_ATTR = "localcloud_start_sequence_number"

# Guards every shard's ``items`` and ``starting_sequence_number``. One lock for all shards: the
# critical sections are a few list operations, and a lock stored on the shard would break the
# deep copy moto makes of a table for a backup.
LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stream record: what GetRecords returns, its sequence number and when it arrived."""

    sequence_number: int
    arrived: float
    record: dict[str, Any]
    size: int


def build_record(table: Any, old: Any, new: Any) -> dict[str, Any] | None:
    """The stream record of a change from ``old`` to ``new`` (moto ``Item``\\ s or None).

    ``None`` when nothing changed: DynamoDB writes no stream record for a write that leaves the
    item as it was. The sequence number is filled in when the record is appended.
    """
    old_image = old.to_json()["Attributes"] if old is not None else None
    new_image = new.to_json()["Attributes"] if new is not None else None
    if old_image is None and new_image is None:
        return None
    if old_image is not None and old_image == new_image:
        return None
    image = new_image if new_image is not None else old_image
    keys = {table.hash_key_attr: image[table.hash_key_attr]}
    if table.range_key_attr is not None:
        keys[table.range_key_attr] = image[table.range_key_attr]
    view = (table.stream_specification or {}).get("StreamViewType") or "KEYS_ONLY"
    body: dict[str, Any] = {
        # DynamoDB rounds the creation time down to the second.
        "ApproximateCreationDateTime": datetime.now(UTC).replace(microsecond=0),
        "Keys": keys,
    }
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and new_image is not None:
        body["NewImage"] = new_image
    if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and old_image is not None:
        body["OldImage"] = old_image
    body["SequenceNumber"] = ""
    body["SizeBytes"] = len(
        json.dumps([keys, body.get("NewImage"), body.get("OldImage")], separators=(",", ":"))
    )
    body["StreamViewType"] = view
    return {
        "eventID": _event_id(),
        "eventName": "INSERT" if old is None else "REMOVE" if new is None else "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": table.region_name,
        "dynamodb": body,
    }


# A record's eventID: 32 hex digits, unique for the server's life, as AWS's look. A random
# prefix and a counter (a fresh uuid4 per record read the kernel's random source each time:
# 9 % of the server while a large file was stored, where every audit entry makes a record).
_EVENT_ID_PREFIX = uuid.uuid4().hex[:16]

_event_ids = itertools.count()


def _event_id() -> str:
    return f"{_EVENT_ID_PREFIX}{next(_event_ids):016x}"


def append(shard: Any, record: dict[str, Any]) -> StoredRecord:
    with LOCK:
        sequence = shard.starting_sequence_number + len(shard.items)
        record["dynamodb"]["SequenceNumber"] = str(sequence)
        stored = StoredRecord(sequence, time.time(), record, record["dynamodb"]["SizeBytes"])
        shard.items.append(stored)
    return stored


def bounds(shard: Any) -> tuple[int, int]:
    """(sequence number of the oldest record held, sequence number the next record will get)."""
    with LOCK:
        return shard.starting_sequence_number, shard.starting_sequence_number + len(shard.items)


def first_sequence_number(shard: Any) -> int:
    return getattr(shard, FIRST_SEQUENCE_ATTR, shard.starting_sequence_number)


def read(shard: Any, position: int, limit: int) -> list[StoredRecord]:
    """Up to ``limit`` records from sequence number ``position`` on; raises if it was trimmed."""
    with LOCK:
        start = position - shard.starting_sequence_number
        if start < 0:
            raise TrimmedError(position, shard.starting_sequence_number)
        return shard.items[start : start + limit]


class TrimmedError(LookupError):
    def __init__(self, position: int, oldest: int) -> None:
        super().__init__(
            f"sequence number {position} is no longer held (oldest record held: {oldest})"
        )
        self.oldest = oldest


def trim(shard: Any, keep_from: int | None, *, now: float | None = None) -> int:
    """Drop the records before ``keep_from`` and those past retention; returns how many."""
    cutoff = (time.time() if now is None else now) - RETENTION_SECONDS
    with LOCK:
        items = shard.items
        count = 0 if keep_from is None else max(0, keep_from - shard.starting_sequence_number)
        count = min(count, len(items))
        while count < len(items) and items[count].arrived < cutoff:
            count += 1
        if count:
            if not hasattr(shard, FIRST_SEQUENCE_ATTR):
                setattr(shard, FIRST_SEQUENCE_ATTR, shard.starting_sequence_number)
            del items[:count]
            shard.starting_sequence_number += count
    return count


def stream_location(stream_arn: str) -> tuple[str, str, str, str] | None:
    """(account, region, table name, stream label) of a stream ARN."""
    parts = stream_arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb" or "/stream/" not in parts[5]:
        return None
    table_part, label = parts[5].split("/stream/", 1)
    return parts[4], parts[3], table_part.removeprefix("table/"), label


def shard_for(stream_arn: str) -> Any | None:
    """The shard of the stream an ARN names, if that table and stream still exist."""
    from moto.dynamodb.models import dynamodb_backends

    location = stream_location(stream_arn)
    if location is None:
        return None
    account, region, table_name, label = location
    if account not in dynamodb_backends or region not in dynamodb_backends[account]:
        return None
    table = dynamodb_backends[account][region].tables.get(table_name)
    if table is None or table.stream_shard is None or table.latest_stream_label != label:
        return None
    return table.stream_shard


def lambda_record(stored: StoredRecord, stream_arn: str) -> dict[str, Any]:
    """The record as Lambda puts it in a DynamoDB Streams event."""
    record = stored.record
    dynamodb = dict(record["dynamodb"])
    created = dynamodb["ApproximateCreationDateTime"]
    dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}
