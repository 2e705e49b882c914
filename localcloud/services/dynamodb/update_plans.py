"""Simple DynamoDB update expressions applied to the item directly.

moto applies every ``UpdateExpression`` by deep-copying its syntax tree, walking the copy with ten
validating and resolving processors, then executing it node by node; each attribute it sets
re-measures the whole item (its 400 KB check). Payment steps, batch counters and the sweeper's
marks are all top-level ``SET a = :v``, ``SET n = n + :one``, ``SET h = list_append(h, :e)``,
``REMOVE a`` and ``ADD n :one``: the walk was a quarter of the server while payments were
processed.

``compile_plan`` turns such an expression, once per text, into a list of actions; ``apply_plan``
checks what moto's validators check (names and values defined, no key attribute touched, no
path twice, the attribute definitions' types, operands present and of the right type, the item's
size) and applies the actions with moto's own ``DynamoType`` arithmetic. Anything else, and
anything those checks find wrong, raises ``NotSimple`` *before* the item changes: the caller then
hands the request to moto, which applies it or raises its own error for it. Both give the same
item (``tests/unit/localcloud/test_dynamodb_update_plans.py`` checks that on random
expressions and items). ``localcloud.services.dynamodb.updates`` routes ``UpdateItem`` here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

# Distinct expressions whose plans are kept (the platform sends a handful).
PLANS_KEPT = 1024

# Items larger than this go to moto, which enforces DynamoDB's 400 KB limit its own way.
SIZE_CHECKED_HERE = 300_000

_TOKEN = re.compile(
    r"\s*(?:(#[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)|([A-Za-z_][A-Za-z0-9_]*)|([=+\-(),]))"
)
_CLAUSES = ("SET", "REMOVE", "ADD")


class NotSimple(Exception):
    """The update is not one this module applies; moto applies it (or rejects it)."""


@dataclass(frozen=True)
class Operand:
    kind: str  # "name" (#placeholder), "path" (a bare attribute name) or "value" (:placeholder)
    text: str


@dataclass(frozen=True)
class Action:
    clause: str  # SET, REMOVE or ADD
    target: Operand
    function: str | None = None  # None (plain operand), "+", "-" or "list_append"
    operands: tuple[Operand, ...] = ()


def _tokens(expression: str) -> list[tuple[str, str]] | None:
    tokens, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            if expression[position:].strip():
                return None  # nested paths, functions' other punctuation: moto's way
            break
        name, value, word, mark = match.groups()
        kind = "name" if name else "value" if value else "word" if word else "mark"
        tokens.append((kind, name or value or word or mark))
        position = match.end()
    return tokens


@functools.lru_cache(maxsize=PLANS_KEPT)
def compile_plan(expression: str) -> tuple[Action, ...] | None:
    """The expression's actions, or None when it is not a simple one (or moto rejects it)."""
    try:
        UpdateExpressionParser.make(expression)
    except Exception:  # moto raises its own validation error for it
        return None
    tokens = _tokens(expression)
    if not tokens:
        return None
    reserved = ReservedKeywords.get_reserved_keywords()
    position = 0

    def take(kind: str | None = None, text: str | None = None) -> str:
        nonlocal position
        if position >= len(tokens):
            raise NotSimple
        got_kind, got = tokens[position]
        if (kind is not None and got_kind != kind) or (text is not None and got != text):
            raise NotSimple
        position += 1
        return got

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def path() -> Operand:
        kind, text = peek() or ("", "")
        if kind == "name":
            return Operand("name", take())
        if kind == "word" and text.upper() not in reserved:
            return Operand("path", take())
        raise NotSimple

    def operand() -> Operand:
        kind, _ = peek() or ("", "")
        return Operand("value", take()) if kind == "value" else path()

    def assignment() -> Action:
        target = path()
        take("mark", "=")
        if peek() == ("word", "list_append"):
            take()
            take("mark", "(")
            first = operand()
            take("mark", ",")
            second = operand()
            take("mark", ")")
            return Action("SET", target, "list_append", (first, second))
        first = operand()
        if peek() in (("mark", "+"), ("mark", "-")):
            function = take()
            return Action("SET", target, function, (first, operand()))
        return Action("SET", target, None, (first,))

    actions: list[Action] = []
    seen: set[str] = set()
    try:
        while position < len(tokens):
            clause = take("word").upper()
            if clause not in _CLAUSES or clause in seen:
                return None
            seen.add(clause)
            while True:
                if clause == "SET":
                    actions.append(assignment())
                elif clause == "REMOVE":
                    actions.append(Action("REMOVE", path()))
                else:
                    target = path()
                    actions.append(Action("ADD", target, None, (Operand("value", take("value")),)))
                if peek() != ("mark", ","):
                    break
                take()
    except NotSimple:
        return None
    return tuple(actions)


def apply_plan(
    plan: tuple[Action, ...],
    item: Any,
    table: Any,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    store: Callable[[DynamoType], DynamoType] = lambda value: value,
) -> None:
    """Apply ``plan`` to ``item`` (moto's ``Item``) as moto would; ``store`` gets each new
    value on its way into the item.

    ``NotSimple`` (raised before any change) leaves the item as it was.
    """
    names, values = names or {}, values or {}
    attrs = item.attrs

    def attribute(operand: Operand) -> str:
        if operand.kind == "name":
            if operand.text not in names:
                raise NotSimple
            return names[operand.text]
        return operand.text

    def resolve(operand: Operand) -> DynamoType:
        if operand.kind == "value":
            if operand.text not in values:
                raise NotSimple
            return DynamoType(values[operand.text])
        current = attrs.get(attribute(operand))
        if current is None:
            raise NotSimple  # moto: "refers to an attribute that does not exist in the item"
        return current

    try:
        changes = _evaluate(plan, attrs, table, attribute, resolve)
    except (ArithmeticError, TypeError, ValueError) as error:  # numbers moto's arithmetic refuses
        raise NotSimple from error
    after = dict(attrs)
    for target, value in changes:
        if value is None:
            after.pop(target, None)
        else:
            after[target] = value
    size = sum(bytesize(k) + v.size() for k, v in after.items())
    if size > SIZE_CHECKED_HERE:
        raise NotSimple
    for target, value in changes:
        if value is None:
            attrs.pop(target, None)
        else:
            dict.__setitem__(attrs, target, store(value))  # measured above, once for the item


def _evaluate(
    plan: tuple[Action, ...],
    attrs: dict[str, DynamoType],
    table: Any,
    attribute: Callable[[Operand], str],
    resolve: Callable[[Operand], DynamoType],
) -> list[tuple[str, DynamoType | None]]:
    """Each action's attribute and new value (None: removed), all read from the item as it is."""
    definitions = {d["AttributeName"]: d["AttributeType"] for d in table.attr}
    changes: list[tuple[str, DynamoType | None]] = []
    targets: set[str] = set()
    for action in plan:
        target = attribute(action.target)
        if target in table.table_key_attrs or target in targets:
            raise NotSimple
        targets.add(target)
        if action.clause == "REMOVE":
            changes.append((target, None))
            continue
        operands = [resolve(o) for o in action.operands]
        if action.clause == "ADD":
            (amount,) = operands
            current = attrs.get(target, DynamoType({"N": "0"}))
            if amount.type != "N" or current.type != "N":
                raise NotSimple
            changes.append((target, current + amount))
            continue
        if action.function is None:
            (value,) = operands
            if action.operands[0].kind != "value":
                raise NotSimple  # copying one attribute into another: moto's way
        elif action.function == "list_append":
            first, second = operands
            if first.type != "L" or second.type != "L":
                raise NotSimple
            value = DynamoType.__new__(DynamoType)
            value.type, value.value = "L", [*first.value, *second.value]
        else:
            first, second = operands
            if first.type != "N" or second.type != "N":
                raise NotSimple
            value = first + second if action.function == "+" else first - second
        defined = definitions.get(target)
        if defined is not None and (defined != value.type or not value.value):
            raise NotSimple  # a key attribute of the table or an index: moto checks it
        changes.append((target, value))
    return changes
