"""DynamoDB expressions: parsed and lexed once per text, their trees copied without pickle's
protocol."""

from __future__ import annotations

import copy
from typing import Any

# Distinct DynamoDB expressions whose parse is kept (the platform sends a handful).
EXPRESSION_CACHE_SIZE = 1024


def expressions_parsed_once() -> None:
    """Parse each distinct update expression once, and lex each condition expression once.

    moto tokenizes an ``UpdateExpression`` character by character and parses it on every
    request, and a transaction's request layer parses each item's expression a second time to
    collect its placeholders (the platform sends a handful of distinct expressions, with
    different values each time; tokenizing alone was 7 % of the server while payments were
    processed). The tree depends only on the text, and everything that asks for it only reads
    it (the validator works on its own deep copy), so each text's tree is kept (up to
    ``EXPRESSION_CACHE_SIZE``); an invalid expression raises every time, as before.
    """
    import functools

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
    def parsed(cls: type, expression: str) -> Any:
        return parse(cls, expression)

    UpdateExpressionParser.make = classmethod(parsed)  # type: ignore[method-assign,assignment]

    # Condition expressions are lexed token by token with a freshly built list of patterns;
    # the tokens likewise depend only on the text, and the parser consumes its own copy.
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression

    @functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
    def condition_tokens(expression: str) -> tuple[Any, ...]:
        parser = ConditionExpressionParser(expression, {}, {})
        return tuple(lex(parser))

    def lex_once(self: Any) -> deque[Any]:
        return deque(condition_tokens(self.condition_expression))

    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


def expression_trees_copied_directly() -> None:
    """Deep-copy an update expression's syntax tree node by node.

    moto's update validator deep-copies the expression's tree for every update (the processors
    rewrite nodes); the nodes have no ``__deepcopy__``, so each goes through pickle's
    ``__reduce_ex__`` protocol: 11 % of the server while payments were processed. A node is
    copied here by its attributes: text and numbers shared (immutable), children, parents and
    values deep-copied with the same memo, so the copy is the same tree as before.
    """
    from moto.dynamodb.parsing.ast_nodes import Node

    immutable = (str, int, float, bool, type(None))

    def node_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        found = memo.get(id(self))
        if found is not None:
            return found
        result = self.__class__.__new__(self.__class__)
        memo[id(self)] = result
        state = result.__dict__
        for name, value in self.__dict__.items():
            state[name] = value if isinstance(value, immutable) else copy.deepcopy(value, memo)
        return result

    Node.__deepcopy__ = node_deepcopy  # type: ignore[attr-defined]
