"""DynamoDB expressions on the patched moto (``localcloud/services/dynamodb/expressions.py``): each
text parsed or lexed once and still applied and checked every time; trees copied without
pickle's protocol."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from localcloud_support import TablesKeyedByPk, record_calls

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-expressions")


class TestParsedOnce(TablesKeyedByPk):
    def test_an_update_expression_is_parsed_once_and_still_applied_each_time(
        self, cloud, monkeypatch
    ):
        """Stock moto tokenizes and parses the expression on every request and transact item."""
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser
        from moto.dynamodb.parsing.tokens import ExpressionTokenizer

        tokenized = record_calls(monkeypatch, ExpressionTokenizer, "_make_list")
        parsed = record_calls(monkeypatch, UpdateExpressionParser, "_parse")
        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="tokens",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        expression = "SET #n = if_not_exists(#n, :zero) + :one, note_a = :note"
        for n in range(5):
            dynamodb.update_item(
                TableName="tokens",
                Key={"pk": {"S": "counter"}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#n": "n"},
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":note": {"S": f"update {n}"},
                },
            )
        item = dynamodb.get_item(TableName="tokens", Key={"pk": {"S": "counter"}})["Item"]
        assert (item["n"], item["note_a"]) == ({"N": "5"}, {"S": "update 4"})
        assert len(tokenized) <= 1 and len(parsed) <= 1
        for _ in range(2):  # a malformed expression is refused every time
            with pytest.raises(ClientError, match="ValidationException"):
                dynamodb.update_item(
                    TableName="tokens",
                    Key={"pk": {"S": "counter"}},
                    UpdateExpression="SET n = = :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )

    def test_a_condition_expression_is_lexed_once_and_still_checked_each_time(
        self, cloud, monkeypatch
    ):
        from moto.dynamodb.comparisons import ConditionExpressionParser

        lexed = []
        lex_one = ConditionExpressionParser._lex_one_node

        def counting(self, remaining):
            lexed.append(self.condition_expression)
            return lex_one(self, remaining)

        monkeypatch.setattr(ConditionExpressionParser, "_lex_one_node", counting)
        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "conditions")
        condition = "attribute_not_exists(pk) OR version_a < :version"
        for version in (1, 2, 2):
            try:
                dynamodb.put_item(
                    TableName="conditions",
                    Item={"pk": {"S": "a"}, "version_a": {"N": str(version)}},
                    ConditionExpression=condition,
                    ExpressionAttributeValues={":version": {"N": str(version)}},
                )
            except ClientError as exc:
                assert version == 2 and "ConditionalCheckFailed" in str(exc)
        item = dynamodb.get_item(TableName="conditions", Key={"pk": {"S": "a"}})["Item"]
        assert item["version_a"] == {"N": "2"}
        # One pass over the text: a call per token or space (8 tokens, 4 spaces), not three.
        assert lexed.count(condition) == 12
        lexed.clear()
        for _ in range(2):  # a malformed condition is refused every time (moto answers 500)
            with pytest.raises(ClientError):
                dynamodb.put_item(
                    TableName="conditions",
                    Item={"pk": {"S": "b"}},
                    ConditionExpression="attribute_not_exists(pk",
                    ExpressionAttributeValues={":v": {"S": "b"}},
                )


class TestTreesCopied(TablesKeyedByPk):
    def test_an_update_expression_tree_is_copied_without_pickles_protocol(self, cloud, monkeypatch):
        """Stock moto copies each node of the tree through ``__reduce_ex__``."""
        import copy

        from moto.dynamodb.parsing.ast_nodes import Node
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser

        tree = UpdateExpressionParser.make(
            "SET #v = #v + :one, history = list_append(history, :h) REMOVE pending_at"
        )
        reconstructed = []
        reconstruct = copy._reconstruct

        def counting(x, memo, *args, **kwargs):
            reconstructed.append(type(x).__name__)
            return reconstruct(x, memo, *args, **kwargs)

        monkeypatch.setattr(copy, "_reconstruct", counting)
        copied = copy.deepcopy(tree)
        assert reconstructed == []

        def shape(node, parent=None):
            assert node.parent is parent or parent is None
            kids = [shape(c, node) for c in node.children or [] if isinstance(c, Node)]
            leaves = [c for c in node.children or [] if not isinstance(c, Node)]
            return (type(node).__name__, leaves, kids)

        assert shape(copied) == shape(tree)
        originals = {id(n) for n in _nodes(tree)}
        assert not originals & {id(n) for n in _nodes(copied)}  # nothing shared

        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "trees")
        for n in range(2):
            dynamodb.update_item(
                TableName="trees",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET n = if_not_exists(n, :zero) + :one, h = list_append("
                "if_not_exists(h, :empty), :h)",
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":empty": {"L": []},
                    ":h": {"L": [{"S": f"step {n}"}]},
                },
            )
        item = dynamodb.get_item(TableName="trees", Key={"pk": {"S": "a"}})["Item"]
        assert item["n"] == {"N": "2"}
        assert item["h"] == {"L": [{"S": "step 0"}, {"S": "step 1"}]}


def _nodes(node):
    from moto.dynamodb.parsing.ast_nodes import Node

    yield node
    for child in node.children or []:
        if isinstance(child, Node):
            yield from _nodes(child)
