"""DynamoDB Streams: writes append their records for readers; GetShardIterator and GetRecords
read them as DynamoDB Streams does."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

from localcloud.services.dynamodb_streams import shards

# Shard iterators expire after 15 minutes in AWS.
STREAM_ITERATOR_LIFETIME_SECONDS = 15 * 60


def records_kept_for_their_readers(on_record: Callable[[], None]) -> None:
    """Keep stream records for their readers instead of handing them to Lambda inside the write.

    moto's ``StreamShard.add`` invokes every mapped function synchronously, inside the write
    request, with every record the shard holds, then empties the shard: a slow or failing function
    slows or fails the write, GetRecords and other mappings never see the records, and sequence
    numbers start again (two writes in a row both got the shard's first number). It also writes a
    record for a write that changed nothing, which DynamoDB does not.

    Here a write only appends its record (numbers ascending under a lock) and wakes the
    ``StreamPoller`` (``localcloud.services.dynamodb_streams.poller``), which runs the mappings
    as Lambda does.
    GetShardIterator/GetRecords read the records held; the poller drops what every mapping has
    read, and those reads answer ``TrimmedDataAccessException``. Iterators expire after 15
    minutes as in AWS (moto keeps every one ever issued) and a wrong shard id is
    ``ResourceNotFoundException`` (moto fails an assertion: HTTP 500).
    """
    import moto.dynamodbstreams.models as stream_models
    from moto.awslambda.models import LambdaBackend
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models.table import StreamShard

    def add(self: StreamShard, old: Any, new: Any) -> None:
        record = shards.build_record(self.table, old, new)
        if record is None:
            return
        shards.append(self, record)
        on_record()

    def read(shard: Any, position: int, limit: int) -> list[dict[str, Any]]:
        try:
            return [stored.record for stored in shards.read(shard, position, limit)]
        except shards.TrimmedError as error:
            raise JsonRESTError("TrimmedDataAccessException", str(error)) from error

    def get(self: StreamShard, start: int, quantity: int) -> list[dict[str, Any]]:
        return read(self, start, quantity)

    def to_json(self: StreamShard) -> dict[str, Any]:
        first = shards.first_sequence_number(self)
        return {"ShardId": self.id, "SequenceNumberRange": {"StartingSequenceNumber": str(first)}}

    class ShardIterator:
        """moto's iterator, positioned by what the shard holds now, with AWS's lifetime."""

        def __init__(
            self,
            streams_backend: Any,
            stream_shard: Any,
            shard_iterator_type: str,
            sequence_number: int | None = None,
        ) -> None:
            oldest, end = shards.bounds(stream_shard)
            if shard_iterator_type == "TRIM_HORIZON":
                position = oldest
            elif shard_iterator_type == "LATEST":
                position = end
            elif shard_iterator_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                if sequence_number is None:
                    raise JsonRESTError("ValidationException", "SequenceNumber is required")
                position = int(sequence_number) + (shard_iterator_type == "AFTER_SEQUENCE_NUMBER")
                if position < oldest:
                    raise JsonRESTError(
                        "TrimmedDataAccessException",
                        f"sequence number {sequence_number} is beyond the trim horizon",
                    )
            else:
                raise JsonRESTError(
                    "ValidationException", f"unknown ShardIteratorType {shard_iterator_type}"
                )
            self.id = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
            self.streams_backend = streams_backend
            self.stream_shard = stream_shard
            self.sequence_number = position
            self.expires = time.monotonic() + STREAM_ITERATOR_LIFETIME_SECONDS

        @property
        def arn(self) -> str:
            table = self.stream_shard.table
            return f"{table.table_arn}/stream/{table.latest_stream_label}|1|{self.id}"

        def get(self, limit: int = 1000) -> dict[str, Any]:
            records = read(self.stream_shard, self.sequence_number, limit)
            following = ShardIterator.__new__(ShardIterator)
            following.__dict__.update(self.__dict__)
            following.id = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
            following.expires = time.monotonic() + STREAM_ITERATOR_LIFETIME_SECONDS
            if records:
                following.sequence_number = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1
            register(self.streams_backend, following)
            return {"NextShardIterator": following.arn, "Records": records}

    def register(backend: Any, iterator: ShardIterator) -> None:
        iterators = backend.shard_iterators
        # Insertion order is expiry order: drop the expired ones from the front.
        now = time.monotonic()
        while iterators:
            oldest = next(iter(iterators))
            if iterators[oldest].expires > now:
                break
            del iterators[oldest]
        iterators[iterator.arn] = iterator

    def get_shard_iterator(
        self: Any,
        arn: str,
        shard_id: str,
        shard_iterator_type: str,
        sequence_number: int | None = None,
    ) -> ShardIterator:
        table = self._get_table_from_arn(arn)
        if table.stream_shard is None or table.stream_shard.id != shard_id:
            raise JsonRESTError(
                "ResourceNotFoundException",
                f"Requested resource not found: Shard: {shard_id} in Stream: {arn} not found",
            )
        iterator = ShardIterator(self, table.stream_shard, shard_iterator_type, sequence_number)
        register(self, iterator)
        return iterator

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is None or iterator.expires < time.monotonic():
            raise JsonRESTError(
                "ExpiredIteratorException",
                "Iterator expired. The iterator was created over 15 minutes ago.",
            )
        return iterator.get(limit)

    original_create_mapping = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        mapping = original_create_mapping(self, spec)
        shard = shards.shard_for(mapping.event_source_arn)
        if shard is not None:
            # LATEST means the records written after the mapping was created, not after the
            # poller first looks at it.
            oldest, end = shards.bounds(shard)
            start = end if mapping.starting_position == "LATEST" else oldest
            setattr(mapping, shards.START_ATTR, start)
            on_record()
        return mapping

    StreamShard.add = add
    StreamShard.get = get
    StreamShard.to_json = to_json
    stream_models.ShardIterator = ShardIterator
    stream_models.DynamoDBStreamsBackend.get_shard_iterator = get_shard_iterator
    stream_models.DynamoDBStreamsBackend.get_records = get_records
    LambdaBackend.create_event_source_mapping = create_event_source_mapping
