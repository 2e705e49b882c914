"""DynamoDB items: built in one pass with shared strings, and a Query that reads its partition."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

# moto's DynamoDB item size limit (DynamoDB's is 400 KB; moto measures a little differently).
ITEM_SIZE_LIMIT = 405_000

# Strings stored in DynamoDB items up to this length are shared between items (interned):
# statuses, currencies, timestamps, ids; longer ones (hashes, notes) are rarely repeated.
SHARED_STRING_LENGTH = 40


def items_built_once_with_shared_strings() -> Callable[[], None]:
    """Build a stored item in one pass and share its repeated strings with every other item.

    moto builds an item attribute by attribute into a dict that re-measures the whole item on
    every insertion (its 400 KB check): 154 µs for a payment, once per ``PutItem`` and every
    transact put. And every item keeps its own copy of every string the request's JSON held:
    attribute names, statuses, currencies, the timestamp a payment repeats in four places, a
    batch run's id on each of its rows; 100,000 payments and their 300,000 audit entries are
    about 1.3 GB that way. Here an item is built in one pass and measured once (the same limit
    on the same sum), and attribute names, map keys and short values (up to
    ``SHARED_STRING_LENGTH`` characters) are interned: equal strings are one object.
    ``share_strings`` does the same for the values the direct update path stores. Returns a
    function that undoes the patch.
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    moto_init = Item.__init__

    def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        stored = LimitedSizeDict()
        for key, value in attrs.items():
            dict.__setitem__(stored, sys.intern(key), share_strings(DynamoType(value)))
        if sum(bytesize(k) + v.size() for k, v in stored.items()) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = stored

    Item.__init__ = init  # type: ignore[method-assign]

    def undo() -> None:
        Item.__init__ = moto_init  # type: ignore[method-assign]

    return undo


def share_strings(value: Any) -> Any:
    """``value`` (a moto ``DynamoType``) with its type, map keys and short strings interned."""
    value.type = sys.intern(value.type)
    kind, inner = value.type, value.value
    if kind in ("S", "N"):
        if type(inner) is str and len(inner) <= SHARED_STRING_LENGTH:
            value.value = sys.intern(inner)
    elif kind == "M":
        value.value = {sys.intern(k): share_strings(v) for k, v in inner.items()}
    elif kind == "L":
        for element in inner:
            share_strings(element)
    elif kind in ("SS", "NS"):
        value.value = [
            sys.intern(v) if type(v) is str and len(v) <= SHARED_STRING_LENGTH else v for v in inner
        ]
    return value


def query_reads_its_partition() -> None:
    """A Query of a table's own key reads the items of that partition key, not the table.

    moto answers every Query by listing all the table's items, sorting them, and keeping the
    ones with the partition key asked for: each query of an audit trail cost the whole audit
    log (reconciling 20,000 payments against 60,000 entries was 1.2 billion item checks). Here a
    Query without an index lists only the items stored under its partition key (moto keeps them
    in a dict by that key), sorted as before; index queries and scans take moto's way.
    """
    import inspect

    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items
    signature = inspect.signature(original_query)
    partition = threading.local()

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        key = arguments.get("hash_key")
        partition.key = key if key is not None and not arguments.get("index_name") else None
        try:
            return original_query(self, *args, **kwargs)
        finally:
            partition.key = None

    def all_items(self: Table) -> list[Any]:
        key = getattr(partition, "key", None)
        if key is None:
            return original_all_items(self)
        stored = self.items.get(key)
        if stored is None:
            return []
        if not self.range_key_attr:
            return [stored]
        return sorted(stored.values(), key=lambda item: item.range_key)

    Table.query = query
    Table.all_items = all_items
