"""Attribute values taken and answered as sent: the same parameters and bodies as moto's walk."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from localcloud_support import record_calls
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.serialize import XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model

from localcloud.services.dynamodb import serialization

pytestmark = pytest.mark.xdist_group("localcloud-dynamodb-serialization")

scalars = st.one_of(
    st.text(max_size=5).map(lambda s: {"S": s}),
    st.integers(-(10**12), 10**12).map(lambda n: {"N": str(n)}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(min_size=1, max_size=3), max_size=3).map(lambda v: {"SS": v}),
    st.lists(st.integers(0, 99).map(str), max_size=3).map(lambda v: {"NS": v}),
    # Binary parts: the shape walk base64-encodes them, so they must take it.
    st.binary(max_size=4).map(lambda b: {"B": b}),
    st.binary(max_size=4).map(lambda b: {"B": base64.b64encode(b).decode()}),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        # Non-empty map keys: moto's walk drops a map's "" key level (it takes an empty key for
        # the top of the response); answered as stored, the map keeps it, as DynamoDB does.
        st.dictionaries(st.text(min_size=1, max_size=3), inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=12,
)
items = st.dictionaries(st.text(min_size=1, max_size=4), attribute_values, max_size=5)


def body(operation: str, result: dict) -> str:
    service = "dynamodbstreams" if operation == "GetRecords" else "dynamodb"
    model = get_service_model(service)
    serializer = get_serializer_class(service, "json")(
        operation_model=model.operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(response_transformers=None),
    )
    return serializer.serialize(result)["body"]


@settings(max_examples=150, deadline=None)
@given(st.lists(items, max_size=4), items)
def test_items_as_stored_serialize_exactly_as_motos_walk_does(batch, single):
    results = {
        "BatchGetItem": {"Responses": {"payments": batch}, "UnprocessedKeys": {}},
        "GetItem": {"Item": single},
        "Query": {"Items": batch, "Count": len(batch), "ScannedCount": len(batch)},
        "GetRecords": {
            "Records": [{"eventName": "MODIFY", "dynamodb": {"NewImage": i}} for i in batch]
        },
    }
    walked = {operation: body(operation, result) for operation, result in results.items()}
    undo = serialization.attribute_values_as_sent()
    try:
        direct = {operation: body(operation, result) for operation, result in results.items()}
    finally:
        undo()
    assert direct == walked


def test_wire_ready_values_are_exactly_the_binary_free_ones():
    assert serialization._wire_ready({"M": {"h": {"L": [{"S": "a"}, {"N": "1"}, {"NULL": True}]}}})
    assert not serialization._wire_ready({"M": {"h": {"L": [{"B": "AAEC"}]}}})
    assert not serialization._wire_ready({"S": "a", "N": "1"})  # two types: moto's way
    assert not serialization._wire_ready({"N": 1})  # not a string


def test_a_batch_of_payments_is_answered_without_walking_their_attributes(monkeypatch):
    """Stock moto walks every attribute value of every item through its shape."""
    from moto.core.serialize import BaseJSONSerializer

    walked = record_calls(monkeypatch, BaseJSONSerializer, "_serialize_structure_member")
    history = {"L": [{"M": {"status": {"S": s}, "at": {"S": "t"}}} for s in ("A", "B", "C")]}
    payment = {"payment_id": {"S": "p"}, "amount": {"N": "10.00"}, "history": history}
    result = {"Responses": {"payments": [payment] * 50}, "UnprocessedKeys": {}}
    walk = body("BatchGetItem", result)
    assert len(walked) > 50 * 10
    walked.clear()
    undo = serialization.attribute_values_as_sent()
    try:
        assert body("BatchGetItem", result) == walk
    finally:
        undo()
    assert len(walked) <= 3  # the response's own members only


def parameters(operation: str, request: dict) -> dict:
    model = get_service_model("dynamodb")
    parser = PROTOCOL_PARSERS["json"](model.operation_model(operation), map_type=dict)
    return parser.parse(
        {
            "method": "POST",
            "values": {},
            "headers": {},
            "body": json.dumps(request).encode(),
            "url_path": "/",
            "url_params": {},
        }
    )


# In a request, binary values are base64 text (the SDK encodes them); moto's walk decodes them.
sent_values = attribute_values.map(
    lambda v: json.loads(json.dumps(v, default=lambda b: base64.b64encode(b).decode()))
)
sent_items = st.dictionaries(st.text(min_size=1, max_size=4), sent_values, max_size=5)


@settings(max_examples=150, deadline=None)
@given(st.lists(sent_items, min_size=1, max_size=3), sent_values)
def test_requests_parse_exactly_as_motos_walk_does(batch, value):
    requests = {
        "PutItem": {"TableName": "t", "Item": batch[0]},
        "TransactWriteItems": {
            "TransactItems": [{"Put": {"TableName": "t", "Item": item}} for item in batch]
            + [
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "p"}},
                        "UpdateExpression": "SET a = :v",
                        "ExpressionAttributeValues": {":v": value},
                    }
                }
            ]
        },
        "BatchWriteItem": {"RequestItems": {"t": [{"PutRequest": {"Item": i}} for i in batch]}},
    }
    walked = {operation: parameters(operation, request) for operation, request in requests.items()}
    undo = serialization.attribute_values_as_sent()
    try:
        direct = {op: parameters(op, request) for op, request in requests.items()}
    finally:
        undo()
    assert direct == walked


def test_a_chunks_transaction_is_read_without_walking_its_attributes(monkeypatch):
    """Stock moto rebuilds every attribute value of every item from its JSON, member by member."""
    from moto.core.parse import BaseJSONParser

    calls = record_calls(monkeypatch, BaseJSONParser, "_parse_structure")
    row = {"payment_id": {"S": "p"}, "amount": {"S": "10.00"}, "line": {"N": "7"}}
    request = {"TransactItems": [{"Put": {"TableName": "t", "Item": row}}] * 50}
    walk = parameters("TransactWriteItems", request)
    assert [shape.name for _, shape, _ in calls].count("AttributeValue") == 50 * 3
    calls.clear()
    undo = serialization.attribute_values_as_sent()
    try:
        assert parameters("TransactWriteItems", request) == walk
    finally:
        undo()
    assert "AttributeValue" not in [shape.name for _, shape, _ in calls]
