"""DynamoDB UpdateItem: simple updates applied directly, and an item copied only for a stream."""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Callable
from typing import Any

from localcloud.services.dynamodb import update_plans
from localcloud.services.dynamodb.items import share_strings


def simple_updates_applied_directly() -> Callable[[], None]:
    """Apply a simple ``UpdateExpression`` to the item directly instead of through moto's walk.

    moto validates and executes every update by deep-copying the expression's tree, walking it
    with ten processors and measuring the whole item once per attribute set: a quarter of the
    server while payments were processed, most of it for ``SET #a = :a`` and ``#v = #v + :one``.
    ``update_plans`` applies the top-level SET / REMOVE / ADD forms itself, with moto's own
    condition check before and stream record after; anything else, or anything its checks find
    wrong, goes to moto unchanged, before the item has changed. Returns a function that undoes
    the patch (the unit tests compare both ways on random updates).
    """
    from moto.dynamodb.comparisons import create_condition_expression_parser
    from moto.dynamodb.exceptions import ConditionalCheckFailed
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    moto_update_item = DynamoDBBackend.update_item

    def update_item(
        self: Any,
        table_name: str,
        key: dict[str, Any],
        update_expression: str,
        expression_attribute_names: dict[str, Any],
        expression_attribute_values: dict[str, Any],
        attribute_updates: dict[str, Any] | None = None,
        expected: dict[str, Any] | None = None,
        condition_expression: str | None = None,
        return_values_on_condition_check_failure: str | None = None,
    ) -> Any:
        arguments = (
            table_name,
            key,
            update_expression,
            expression_attribute_names,
            expression_attribute_values,
            attribute_updates,
            expected,
            condition_expression,
            return_values_on_condition_check_failure,
        )
        simple = not attribute_updates and not expected and update_expression
        plan = update_plans.compile_plan(update_expression) if simple else None
        table = self.get_table(table_name)
        keys = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
        if plan is None or set(keys) != set(key):
            return moto_update_item(self, *arguments)
        item = table.get_item(*[DynamoType(key[name]) for name in keys])
        if item is None:  # an update that creates its item: moto's way
            return moto_update_item(self, *arguments)
        condition = create_condition_expression_parser(
            condition_expression, expression_attribute_names, expression_attribute_values
        ).parse()
        if not condition.expr(item):
            if return_values_on_condition_check_failure == "ALL_OLD":
                raise ConditionalCheckFailed(item=item.to_json()["Attributes"])
            raise ConditionalCheckFailed
        before = copy.deepcopy(item) if table.stream_shard is not None else None
        try:
            update_plans.apply_plan(
                plan,
                item,
                table,
                expression_attribute_names,
                expression_attribute_values,
                store=share_strings,
            )
        except update_plans.NotSimple:
            return moto_update_item(self, *arguments)  # the item is as it was
        if before is not None:
            table.stream_shard.add(before, item)
        return item

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]

    def undo() -> None:
        DynamoDBBackend.update_item = moto_update_item  # type: ignore[method-assign]

    return undo


def update_copies_only_for_streams() -> None:
    """Copy the item an ``UpdateItem`` changes only when a stream wants its old image.

    moto deep-copies the item before every update (and every update of a transaction) to hand
    the old image to the table's stream, whether the table has a stream or not: every step of a
    payment copied the whole payment, history and all, for no reader (the payments table has no
    stream). The copy is only ever read by the stream; without one, the item is used as it is.
    (A transaction's rollback keeps its own copy: ``isolate_transactions``.)
    """

    from moto.dynamodb import models

    streamless = contextvars.ContextVar("streamless", default=False)
    previous = models.copy  # the transaction patch's: it copies no table either

    class StreamlessNotCopied:
        def __getattr__(self, name: str) -> Any:
            return getattr(previous, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if streamless.get() else previous.deepcopy(value, memo)

    models.copy = StreamlessNotCopied()  # type: ignore[attr-defined]
    update_item = models.DynamoDBBackend.update_item

    def update_without_copy(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        token = streamless.set(self.get_table(table_name).stream_shard is None)
        try:
            return update_item(self, table_name, *args, **kwargs)
        finally:
            streamless.reset(token)

    models.DynamoDBBackend.update_item = update_without_copy  # type: ignore[method-assign]
