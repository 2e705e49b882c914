"""``localcloud.services.dynamodb.update_plans`` against moto's own update path, on random
expressions and items.

The direct path may decline an update (``NotSimple``, the item untouched: moto then applies it);
when it applies one, moto must accept the same update and produce the same item.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import UpdateExpressionValidator

from localcloud.services.dynamodb import update_plans as updates

# Attribute names an expression may touch: the table's keys, an index key, plain attributes and
# reserved words (which moto refuses bare).
POOL = ["pk", "sk", "gk", "a", "b", "n", "h", "status", "size"]


def make_table() -> Table:
    return Table(
        "t",
        account_id="123456789012",
        region="us-east-1",
        schema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        attr=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gk", "AttributeType": "N"},
        ],
        global_indexes=[
            {
                "IndexName": "by-gk",
                "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )


numbers = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False).map(
        lambda d: str(Decimal(d).normalize()) if d else "0"
    ),
)
scalars = st.one_of(
    numbers.map(lambda n: {"N": n}),
    st.text("xyz", max_size=3).map(lambda s: {"S": s}),
    st.booleans().map(lambda b: {"BOOL": b}),
)
lists = st.lists(scalars, max_size=3).map(lambda items: {"L": items})
attribute_values = st.one_of(
    scalars,
    lists,
    st.lists(st.text("xyz", min_size=1, max_size=2), max_size=3, unique=True).map(
        lambda items: {"SS": items}
    ),
    st.dictionaries(st.sampled_from("pq"), scalars, max_size=2).map(lambda m: {"M": m}),
)


@st.composite
def updates_and_items(draw):
    attrs = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    for name in draw(st.lists(st.sampled_from(POOL[2:]), unique=True, max_size=6)):
        kind = draw(st.sampled_from(["N", "L", None]))
        typed = {"N": numbers.map(lambda n: {"N": n}), "L": lists}.get(kind, attribute_values)
        attrs[name] = draw(typed) if name != "gk" else {"N": draw(numbers)}
    names: dict[str, str] = {}
    values: dict[str, dict] = {}

    def path() -> str:
        # Mostly plain attributes; now and then a key, a reserved word, a nested path or a
        # placeholder left undefined, each of which moto refuses or handles itself.
        plain = draw(st.integers(0, 9))
        attribute = draw(st.sampled_from(POOL[3:7] if plain else POOL))
        if draw(st.booleans()):
            placeholder = f"#p{len(names)}"
            if plain or draw(st.booleans()):
                names[placeholder] = attribute
            return placeholder
        return attribute if plain or draw(st.booleans()) else attribute + ".q"

    def value(kind: str | None = None) -> str:
        placeholder = f":v{len(values)}"
        if draw(st.integers(0, 19)):  # now and then left undefined
            typed = {"N": numbers.map(lambda n: {"N": n}), "L": lists}.get(kind)
            mostly_typed = typed is not None and draw(st.integers(0, 4))
            values[placeholder] = draw(typed if mostly_typed else attribute_values)
        return placeholder

    def operand(kind: str | None = None) -> str:
        return value(kind) if draw(st.booleans()) else path()

    def assignment() -> str:
        form = draw(st.sampled_from(["value", "plus", "minus", "append", "copy", "if_not_exists"]))
        target = path()
        if form == "value":
            return f"{target} = {value()}"
        if form in ("plus", "minus"):
            sign = "+" if form == "plus" else "-"
            return f"{target} = {operand('N')} {sign} {operand('N')}"
        if form == "append":
            return f"{target} = list_append({operand('L')}, {operand('L')})"
        if form == "copy":
            return f"{target} = {path()}"
        return f"{target} = if_not_exists({path()}, {value()})"

    clauses = []
    kinds = st.sampled_from(["SET", "REMOVE", "ADD"])
    for clause in draw(st.lists(kinds, min_size=1, max_size=3, unique=draw(st.integers(0, 9)) > 0)):
        count = draw(st.integers(1, 2))
        if clause == "SET":
            actions = [assignment() for _ in range(count)]
        elif clause == "REMOVE":
            actions = [path() for _ in range(count)]
        else:
            actions = [f"{path()} {value('N')}" for _ in range(count)]
        clauses.append(f"{clause} {', '.join(actions)}")
    return " ".join(clauses), names, values, attrs


def by_moto(table: Table, item: Item, expression: str, names: dict, values: dict) -> None:
    """What moto's ``update_item`` does with an existing item and an update expression."""
    ast = UpdateExpressionParser.make(expression)
    validated = UpdateExpressionValidator(
        ast,
        expression_attribute_names=names,
        expression_attribute_values=values,
        item=item,
        table=table,
    ).validate()
    validated.normalize()
    UpdateExpressionExecutor(validated, item, names).execute()


def new_item(attrs: dict) -> Item:
    return Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs=copy.deepcopy(attrs))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates_and_items())
def test_the_direct_path_gives_the_item_moto_gives_or_declines_untouched(case):
    expression, names, values, attrs = case
    table = make_table()
    plan = updates.compile_plan(expression)
    mine, theirs = new_item(attrs), new_item(attrs)
    try:
        by_moto(table, theirs, expression, names, values)
        moto_error = None
    except Exception as error:  # any refusal of moto's
        moto_error = error
    if plan is None:
        event("declined: not simple")
        return
    try:
        updates.apply_plan(plan, mine, table, names, values)
    except updates.NotSimple:
        event("declined by its checks")
        assert mine.to_json() == new_item(attrs).to_json()
        return
    event("applied directly")
    assert moto_error is None, f"moto refuses {expression!r}: {moto_error!r}"
    assert mine.to_json() == theirs.to_json()


@pytest.mark.parametrize(
    "expression",
    [
        # A payment's step (lambda/payments/repository.py), with and without leaving the index.
        "SET #version = #version + :one, history = list_append(history, :history), "
        "#c0 = :c0, #c1 = :c1",
        "SET #version = #version + :one, history = list_append(history, :history), "
        "#c0 = :c0 REMOVE pending_shard, pending_at",
        # A batch's counters, a batch summary's changes and the sweeper's mark.
        "SET updated_at = :now ADD #accepted :accepted, #rejected :rejected",
        "SET #c0 = :c0, #c1 = :c1 REMOVE reason",
        "SET pending_at = :now",
    ],
)
def test_the_platforms_own_updates_take_the_direct_path(expression):
    assert updates.compile_plan(expression)


def test_a_step_applied_directly_matches_moto_and_reads_the_item_before_the_update():
    table = make_table()
    attrs = {
        "pk": {"S": "p"},
        "sk": {"S": "s"},
        "version": {"N": "2"},
        "status": {"S": "RECEIVED"},
        "history": {"L": [{"M": {"status": {"S": "RECEIVED"}}}]},
        "gk": {"N": "7"},
        "pending_at": {"S": "t0"},
    }
    expression = (
        "SET #version = #version + :one, history = list_append(history, :history), "
        "#c0 = :c0 REMOVE gk, pending_at"
    )
    names = {"#version": "version", "#c0": "status"}
    values = {
        ":one": {"N": "1"},
        ":history": {"L": [{"M": {"status": {"S": "VALIDATED"}}}]},
        ":c0": {"S": "VALIDATED"},
    }
    mine, theirs = new_item(attrs), new_item(attrs)
    updates.apply_plan(updates.compile_plan(expression), mine, table, names, values)
    by_moto(table, theirs, expression, names, values)
    assert mine.to_json() == theirs.to_json()
    assert mine.attrs["version"].value == "3" and "gk" not in mine.attrs
    assert [h.value["status"].value for h in mine.attrs["history"].value] == [
        "RECEIVED",
        "VALIDATED",
    ]


@pytest.mark.parametrize(
    ("expression", "names", "values"),
    [
        ("SET pk = :v", {}, {":v": {"S": "q"}}),  # a key attribute
        ("SET gk = :v", {}, {":v": {"S": "q"}}),  # an index key of another type
        ("SET a = :v, #a = :w", {"#a": "a"}, {":v": {"N": "1"}, ":w": {"N": "2"}}),  # twice
        ("SET a = #m + :v", {"#m": "m"}, {":v": {"N": "1"}}),  # an operand not in the item
        ("SET a = :v + :w", {}, {":v": {"N": "1"}, ":w": {"S": "x"}}),  # not numbers
        ("ADD a :v", {}, {":v": {"SS": ["x"]}}),  # sets are moto's
        ("SET a = :undefined", {}, {}),
    ],
)
def test_what_moto_would_refuse_or_handle_itself_is_declined_untouched(expression, names, values):
    table = make_table()
    attrs = {"pk": {"S": "p"}, "sk": {"S": "s"}, "b": {"N": "1"}}
    item = new_item(attrs)
    with pytest.raises(updates.NotSimple):
        updates.apply_plan(updates.compile_plan(expression), item, table, names, values)
    assert item.to_json() == new_item(attrs).to_json()
