"""DynamoDB transactions: requests isolated from each other, and a cancelled transaction undone
without copying tables or leaving stream records behind."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any


def isolate_transactions() -> Callable[[], None]:
    """Give moto's DynamoDB requests isolation, and its transactions all-or-nothing stream records.

    To make TransactWriteItems undoable, moto deep-copies every table a transaction touches (once
    per transact item) and, when one condition fails, puts those copies back. On a threaded server
    that rollback also undoes what other requests wrote meanwhile (a batch chunk writes on many
    threads, the processor polls in parallel); the copies cost the size of the table per item, so
    a batch costs the square of its size; and a restored copy replaces the live table object, its
    stream with it. The stream records of a cancelled transaction's first items are written
    before it is cancelled, and an UpdateItem that creates an item writes two records (the bare
    key, then the item).

    Reads race with writes too: moto updates items in place and iterates the live item dicts, so
    a query of a sparse index that meets an UpdateItem removing the index key fails with a
    KeyError (HTTP 500), and a scan or query during a PutItem of a new key can fail with
    "dictionary changed size during iteration".

    Here DynamoDB requests run one at a time under one lock (the GIL serializes moto's pure-Python
    work anyway), and so do the backend's writes for callers that skip the request layer; a
    transaction journals the items it is about to touch and a cancelled one restores only those;
    its stream records are held back until it commits, in order, and dropped when it is
    cancelled; an UpdateItem writes one record. Returns a function that undoes the patch (the
    functional tests use it).
    """

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard, Table
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    local = threading.local()
    names = ("transact_write_items", "put_item", "update_item", "delete_item")
    saved = {name: getattr(DynamoDBBackend, name) for name in names}
    saved_add = StreamShard.add
    saved_copy = models.copy
    saved_call_action = DynamoHandler.call_action

    class TablesNotCopied:
        """``copy`` as moto's transaction code sees it: a journaled transaction copies no table."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if isinstance(value, Table) and getattr(local, "journaled", False):
                return value  # moto's "rollback" then puts the live table back in its own place
            return copy.deepcopy(value, memo)

    def collectors() -> list[list[tuple[Any, Any, Any]]]:
        if not hasattr(local, "collectors"):
            local.collectors = []
        return local.collectors

    def emit(changes: list[tuple[Any, Any, Any]]) -> None:
        """Pass stream changes to the enclosing transaction, or record them now."""
        stack = collectors()
        for change in changes:
            if stack:
                stack[-1].append(change)
            else:
                saved_add(*change)

    def add(self: Any, old: Any, new: Any) -> None:
        stack = collectors()
        if stack:
            stack[-1].append((self, old, new))
        else:
            saved_add(self, old, new)

    def call_action(self: Any) -> Any:
        with lock:
            return saved_call_action(self)

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return saved["put_item"](self, *args, **kwargs)

    def delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return saved["delete_item"](self, *args, **kwargs)

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            changes: list[tuple[Any, Any, Any]] = []
            collectors().append(changes)
            try:
                return saved["update_item"](self, *args, **kwargs)
            finally:
                collectors().pop()
                if changes:
                    # One record from the item before the update to the item after it.
                    emit([(changes[-1][0], changes[0][1], changes[-1][2])])

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            journal = _journal(self, transact_items)
            changes: list[tuple[Any, Any, Any]] = []
            collectors().append(changes)
            local.journaled = True
            try:
                saved["transact_write_items"](self, transact_items)
            except BaseException:
                for table, hash_key, range_key, original in reversed(journal):
                    _restore_item(table, hash_key, range_key, original)
                changes.clear()
                raise
            finally:
                local.journaled = False
                collectors().pop()
                emit(changes)

    DynamoDBBackend.transact_write_items = transact_write_items
    DynamoDBBackend.put_item = put_item
    DynamoDBBackend.update_item = update_item
    DynamoDBBackend.delete_item = delete_item
    StreamShard.add = add
    models.copy = TablesNotCopied()
    DynamoHandler.call_action = call_action

    def undo() -> None:
        for name, method in saved.items():
            setattr(DynamoDBBackend, name, method)
        StreamShard.add = saved_add
        models.copy = saved_copy
        DynamoHandler.call_action = saved_call_action

    return undo


def _journal(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(table, hash key, range key, item as it is now) for each item a transaction writes."""

    journal = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            if op_type == "ConditionCheck":
                continue
            table = backend.get_table(op["TableName"])
            if op_type == "Put":
                key_names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
                key = {name: op["Item"][name] for name in key_names}
            else:
                key = op["Key"]
            hash_key, range_key = backend.get_keys_value(table, key)
            current = table.get_item(hash_key, range_key)
        except Exception:  # noqa: S112 - moto rejects a malformed item itself, before any write
            continue
        # Puts and deletes replace or drop the item object; only an update changes it in place.
        original = copy.deepcopy(current) if op_type == "Update" else current
        journal.append((table, hash_key, range_key, original))
    return journal


def _restore_item(table: Any, hash_key: Any, range_key: Any, original: Any) -> None:
    if table.range_key_attr is None:
        if original is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = original
    elif original is None:
        bucket = table.items.get(hash_key)
        if bucket is not None:
            bucket.pop(range_key, None)
    else:
        table.items[hash_key][range_key] = original
