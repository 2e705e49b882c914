"""DynamoDB UpdateItem on the patched moto (``localcloud/services/dynamodb/updates.py``): a simple
update skips moto's walk and keeps its conditions, stream records and errors; an update copies
the item only for a stream. (The direct path itself is compared with moto's in
test_dynamodb_update_plans.py.)"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from localcloud_support import TablesKeyedByPk, record_calls

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-updates")


class TestSimpleUpdates:
    def test_a_simple_update_skips_motos_walk_and_keeps_conditions_streams_and_errors(
        self, cloud, monkeypatch
    ):
        """Stock moto validates and executes every update through its ten-processor walk."""
        from moto.dynamodb.parsing.validators import UpdateExpressionValidator

        walked = record_calls(monkeypatch, UpdateExpressionValidator, "validate")
        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="steps",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        key = {"pk": {"S": "pay-1"}}
        dynamodb.put_item(
            TableName="steps",
            Item={**key, "version": {"N": "1"}, "status": {"S": "RECEIVED"}, "history": {"L": []}},
        )
        step = {
            "TableName": "steps",
            "Key": key,
            "UpdateExpression": "SET #v = #v + :one, history = list_append(history, :h), "
            "#s = :s REMOVE pending_at",
            "ConditionExpression": "#s = :expected",
            "ExpressionAttributeNames": {"#v": "version", "#s": "status"},
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":h": {"L": [{"S": "VALIDATED"}]},
                ":s": {"S": "VALIDATED"},
                ":expected": {"S": "RECEIVED"},
            },
        }
        dynamodb.transact_write_items(TransactItems=[{"Update": step}])
        again = {**step["ExpressionAttributeValues"], ":expected": {"S": "VALIDATED"}}
        answer = dynamodb.update_item(
            **{**step, "ExpressionAttributeValues": again}, ReturnValues="UPDATED_NEW"
        )
        assert answer["Attributes"]["version"] == {"N": "3"}
        with pytest.raises(ClientError, match="ConditionalCheckFailed") as failed:
            dynamodb.update_item(**step, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        assert failed.value.response["Item"]["version"] == {"N": "3"}
        item = dynamodb.get_item(TableName="steps", Key=key)["Item"]
        assert item["history"] == {"L": [{"S": "VALIDATED"}, {"S": "VALIDATED"}]}
        assert walked == []
        # What the direct path declines still reaches moto, and moto's refusal reaches the client.
        with pytest.raises(ClientError, match="Cannot update attribute pk"):
            dynamodb.update_item(
                TableName="steps",
                Key=key,
                UpdateExpression="SET pk = :v",
                ExpressionAttributeValues={":v": {"S": "pay-2"}},
            )
        assert len(walked) == 1
        streams = cloud.client("dynamodbstreams")
        arn = dynamodb.describe_table(TableName="steps")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [
            (r["dynamodb"].get("OldImage", {}).get("version"), r["dynamodb"]["NewImage"]["version"])
            for r in records
        ] == [(None, {"N": "1"}), ({"N": "1"}, {"N": "2"}), ({"N": "2"}, {"N": "3"})]


class TestUpdateCopies(TablesKeyedByPk):
    def test_an_update_copies_the_item_only_for_a_stream(self, cloud, monkeypatch):
        """Stock moto deep-copies the item before every update in a transaction, stream or not.
        (A plain UpdateItem request is copied once more for its ReturnValues; left as it is.)"""
        import copy

        from moto.dynamodb.models.dynamo_type import Item

        copied = []
        deepcopy = copy.deepcopy

        def counting(value, memo=None):
            if isinstance(value, Item):
                copied.append(value)
            return deepcopy(value, memo)

        monkeypatch.setattr(copy, "deepcopy", counting)
        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "streamless")
        stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        self._table(dynamodb, "streamed", StreamSpecification=stream)
        for table in ("streamless", "streamed"):
            for n in range(3):  # as the processor's transactions update payments
                update = {
                    "TableName": table,
                    "Key": {"pk": {"S": "a"}},
                    "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": str(n)}},
                    "ConditionExpression": "attribute_not_exists(n) OR n < :n",
                }
                dynamodb.transact_write_items(TransactItems=[{"Update": update}])
            item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]
            assert item["n"] == {"N": "2"}
            if table == "streamless":
                # The transaction's rollback journal of the two updates of an existing item
                # (stock moto copied it a second time for each, for no stream).
                assert len(copied) == 2
        assert len(copied) == 2 + 4  # and the streamed table's old images as well
        streams = cloud.client("dynamodbstreams")
        arn = dynamodb.describe_table(TableName="streamed")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [r["dynamodb"].get("OldImage", {}).get("n") for r in records] == [
            None,
            {"N": "0"},
            {"N": "1"},
        ]
