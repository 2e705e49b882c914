"""DynamoDB Streams' API on the patched moto (``localcloud/services/dynamodb_streams/api.py``):
records kept for their readers, ascending sequence numbers, iterators, trimming, unknown shards.
moto as it ships hands the records to Lambda inside the write and then empties the shard."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from localcloud_support import wait_for
from streams_support import (
    consumer,
    delivered,
    put,
    read_all,
    read_stream,
    shard,
    shard_id,
    stream_table,
)

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-streams-api")


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
