"""DynamoDB transactions and isolation on the patched moto
(``localcloud/services/dynamodb/transactions.py``): a cancelled transaction writes no stream record
and leaves concurrent plain writes alone, no table is copied, a query never meets an update half
way, one record per upsert and none for a write that changes nothing."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError
from localcloud_support import wait_for
from streams_support import consumer, delivered, put, read_stream, shard_id, stream_table

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-transactions")


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
