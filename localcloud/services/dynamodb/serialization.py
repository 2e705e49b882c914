"""DynamoDB attribute values read from requests and written to responses as they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def attribute_values_as_sent() -> Callable[[], None]:
    """Read and answer attribute values as they are instead of walking each through its shape.

    moto serializes every response by walking the operation's output shapes, member by member:
    each attribute value of each item (a payment's history, nested maps and lists) goes through
    a dozen calls to come out unchanged. It was 15 % of the server while payments were processed,
    almost all of it the processor's ``BatchGetItem``. An ``AttributeValue`` whose parts are
    already what the wire carries (strings, numbers as strings, booleans, lists, maps; no
    binary, which the shape walk base64-encodes) is placed in the response as it is, and taken
    from a request as it is; anything else takes moto's walk. Returns a function that undoes the
    patch (the tests compare both).
    """
    from moto.core.serialize import BaseJSONSerializer

    services = ("dynamodb", "dynamodbstreams")
    original = BaseJSONSerializer._serialize

    def _serialize(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in services
            and _wire_ready(value)
        ):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize = _serialize  # type: ignore[method-assign]

    # Requests likewise: each attribute value was rebuilt member by member from the JSON it
    # already is (15 % of the server while a large file was stored, its rows' puts).
    from moto.core.parse import BaseJSONParser

    original_parse = BaseJSONParser._parse_shape

    def _parse_shape(self: Any, shape: Any, node: Any) -> Any:
        if (
            shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in services
            and _wire_ready(node)
        ):
            return node
        return original_parse(self, shape, node)

    BaseJSONParser._parse_shape = _parse_shape  # type: ignore[method-assign]

    def undo() -> None:
        BaseJSONSerializer._serialize = original  # type: ignore[method-assign]
        BaseJSONParser._parse_shape = original_parse  # type: ignore[method-assign]

    return undo


def _wire_ready(value: Any) -> bool:
    """An attribute value in the form DynamoDB's JSON carries it, with no binary part."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return type(inner) is str
    if kind in ("BOOL", "NULL"):
        return type(inner) is bool
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "L":
        return type(inner) is list and all(_wire_ready(v) for v in inner)
    if kind == "M":
        return type(inner) is dict and all(
            type(k) is str and _wire_ready(v) for k, v in inner.items()
        )
    return False
