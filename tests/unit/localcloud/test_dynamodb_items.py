"""DynamoDB items on the patched moto (``localcloud/services/dynamodb/items.py``): built in one pass
with shared strings, and a Query of the table's key that reads only its partition."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from localcloud_support import ACCOUNT_ID, TablesKeyedByPk, record_calls

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-items")


class TestStoredItems(TablesKeyedByPk):
    def test_items_are_measured_once_and_share_their_repeated_strings(self, cloud, monkeypatch):
        """Stock moto re-measures the whole item for each attribute it stores, and every item
        keeps its own copy of every string its request held."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodb.models.dynamo_type import DynamoType

        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "shared")
        now = "2026-11-28T01:02:03.456789+00:00"
        note = "a note longer than forty characters, kept as it is"
        for n in range(2):
            item = {
                "pk": {"S": f"pay-{n}"},
                **{f"field_{i:02d}": {"S": "COMPLETED"} for i in range(20)},
                "created_at": {"S": now},
                "history": {"L": [{"M": {"status": {"S": "RECEIVED"}, "at": {"S": now}}}]},
                "note": {"S": note},
                "tags": {"SS": ["EUR", "batch"]},
            }
            with monkeypatch.context() as patched:
                measured = record_calls(patched, DynamoType, "size")
                dynamodb.put_item(TableName="shared", Item=item)
            assert dynamodb.get_item(TableName="shared", Key={"pk": item["pk"]})["Item"] == item
            # About once per attribute and nested value: 25 attributes, 31 measures per put
            # (stock moto measures every stored attribute again for each new one: over 325).
            assert len(measured) <= 40

        table = dynamodb_backends[ACCOUNT_ID]["us-east-1"].get_table("shared")
        first, second = (table.get_item(DynamoType({"S": f"pay-{n}"})).attrs for n in range(2))

        def stored_key(mapping, name):
            return next(k for k in mapping if k == name)

        assert stored_key(first, "created_at") is stored_key(second, "created_at")
        assert first["created_at"].value is second["created_at"].value
        history_1, history_2 = (a["history"].value[0].value for a in (first, second))
        assert history_1["at"].value is first["created_at"].value
        assert stored_key(history_1, "status") is stored_key(history_2, "status")
        assert first["tags"].value[0] is second["tags"].value[0]
        assert first["note"].value == second["note"].value
        assert first["note"].value is not second["note"].value  # long strings are not shared

        with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size"):
            dynamodb.put_item(
                TableName="shared",
                Item={"pk": {"S": "big"}, **{f"b{i}": {"S": "x" * 100_000} for i in range(5)}},
            )


class TestDynamoDbQueries:
    def test_a_query_of_the_tables_key_reads_only_that_partition(self, cloud, monkeypatch):
        """Stock moto lists and sorts every item of the table for each Query."""
        from moto.dynamodb.models.table import Table

        listed = []
        all_items = Table.all_items

        def counting(self):
            items = all_items(self)
            listed.append(len(items))
            return items

        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="trails",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "entity", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "entity", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        for start in range(0, 500, 25):
            dynamodb.batch_write_item(
                RequestItems={
                    "trails": [
                        {
                            "PutRequest": {
                                "Item": {"entity": {"S": f"e-{n % 100}"}, "sk": {"S": f"{n:04d}"}}
                            }
                        }
                        for n in range(start, start + 25)
                    ]
                }
            )
        monkeypatch.setattr(Table, "all_items", counting)
        got = dynamodb.query(
            TableName="trails",
            KeyConditionExpression="entity = :e AND sk > :after",
            ExpressionAttributeValues={":e": {"S": "e-7"}, ":after": {"S": "0100"}},
            ScanIndexForward=False,
            Limit=3,
        )
        assert [item["sk"]["S"] for item in got["Items"]] == ["0407", "0307", "0207"]
        page = dynamodb.query(
            TableName="trails",
            KeyConditionExpression="entity = :e AND sk > :after",
            ExpressionAttributeValues={":e": {"S": "e-7"}, ":after": {"S": "0100"}},
            ScanIndexForward=False,
            ExclusiveStartKey=got["LastEvaluatedKey"],
        )
        assert [item["sk"]["S"] for item in page["Items"]] == ["0107"]
        assert max(listed) <= 5  # the partition's 5 items, not the table's 500
        missing = dynamodb.query(
            TableName="trails",
            KeyConditionExpression="entity = :e",
            ExpressionAttributeValues={":e": {"S": "nobody"}},
        )
        assert missing["Items"] == []
        assert len(dynamodb.scan(TableName="trails")["Items"]) == 500  # scans as before
