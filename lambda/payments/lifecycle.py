"""The payment status lifecycle: RECEIVED -> PROCESSING -> COMPLETED | FAILED.

Each step is one DynamoDB transaction: a conditional update of the payment from the expected
status *and version* (so two workers cannot both make the same step) plus one audit entry whose
sort key is derived from the new version (so a retried write cannot add a second entry). The
audit entry is the outbox: the publisher turns it into the ``payment-events`` event
(``payments.events``), so nothing here publishes and a retry that finds the step already made
has nothing left to do.

A payment that is not final carries ``pending_shard`` and ``pending_at`` (its last change, or
the sweeper's last re-queue), the keys of the payments table's sparse ``pending-index``: the
sweeper finds payments left non-final there without a scan, and the final step removes both, so
the index only ever holds work in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

from payments import clients, events
from payments.repository import (
    PAYER_FIELDS,
    PENDING_SHARDS,
    Repository,
    TransactionCanceled,
    audit_sk,
    now_iso,
    payment_entity,
)
from payments.validation import Payment

RECEIVED = "RECEIVED"
PROCESSING = "PROCESSING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
STATUSES = (RECEIVED, PROCESSING, COMPLETED, FAILED)
FINAL_STATUSES = frozenset({COMPLETED, FAILED})
ALLOWED = {RECEIVED: {PROCESSING}, PROCESSING: {COMPLETED, FAILED}, COMPLETED: set(), FAILED: set()}

SOURCE_API = "api"
SOURCE_BATCH = "batch"


def new_payment_item(
    payment: Payment,
    *,
    payment_id: str,
    source: str,
    now: str,
    batch_id: str | None = None,
    batch_run: str | None = None,
    batch_line: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payment item (status RECEIVED, version 1) and its first audit entry; ``payment_id``
    is the stored id, which names the client that owns it (payments.clients)."""
    history = [{"status": RECEIVED, "at": now}]
    item: dict[str, Any] = {
        "payment_id": payment_id,
        "client_id": clients.split_stored_id(payment_id)[0],
        **payment.content(),
        "amount": payment.amount,
        "status": RECEIVED,
        "version": 1,
        "source": source,
        "content_hash": payment.content_hash(),
        "created_at": now,
        "updated_at": now,
        "history": history,
        "batch_id": batch_id,
        "batch_run": batch_run,
        "batch_line": batch_line,
        "pending_shard": pending_shard(payment_id),
        "pending_at": now,
    }
    audit = {
        "entity_id": payment_entity(payment_id),
        "sk": audit_sk(1, RECEIVED),
        "at": now,
        "event": events.PAYMENT_RECEIVED,
        "status": RECEIVED,
        "source": source,
        "amount": payment.amount,
        "currency": payment.currency,
        "batch_id": batch_id,
        "batch_line": batch_line,
    }
    return item, audit


def pending_shard(payment_id: str) -> str:
    """Spreads non-final payments over ``PENDING_SHARDS`` index partitions (no hot key)."""
    digest = hashlib.sha256(payment_id.encode()).digest()
    return str(int.from_bytes(digest[:4], "big") % PENDING_SHARDS)


class Step(NamedTuple):
    """One status change, ready to commit: its transaction items and the payment after it."""

    payment_id: str
    ops: list[dict[str, Any]]
    updated: dict[str, Any]


def commit(repo: Repository, step: Step) -> dict[str, Any] | None:
    """Commit one ``prepare_step``; the payment after it, or None if someone else moved the
    payment first (its condition on the status and version read failed)."""
    try:
        repo.transact(step.ops)
    except TransactionCanceled:
        return None
    return step.updated


def prepare_step(
    repo: Repository,
    payment: Mapping[str, Any],
    to_status: str,
    *,
    reason: str | None = None,
    actor: str,
    details: Mapping[str, Any] | None = None,
    extra_changes: Mapping[str, Any] | None = None,
) -> Step:
    """Moving ``payment`` (as last read) to ``to_status``: the transaction items (conditional on
    the status and version read) and the payment as it will be. ``commit`` commits one; several
    steps of different payments can also commit in one transaction."""
    from_status = payment["status"]
    if to_status not in ALLOWED[from_status]:
        raise ValueError(f"illegal transition {from_status} -> {to_status}")
    version = int(payment["version"]) + 1
    now = now_iso()
    entry = {"status": to_status, "at": now, "reason": reason}
    changes = {"status": to_status, "updated_at": now, "reason": reason, **(extra_changes or {})}
    if to_status not in FINAL_STATUSES:
        changes["pending_at"] = now
    elif any(payment.get(name) is not None for name in PAYER_FIELDS):
        # Into the sparse minimise-index: the sweeper removes the payer fields after the
        # profile's payer-data days (``final_at`` stays, the time it became final).
        changes["minimise_shard"] = pending_shard(payment["payment_id"])
        changes["final_at"] = now
    audit = {
        "entity_id": payment_entity(payment["payment_id"]),
        "sk": audit_sk(version, to_status),
        "at": now,
        "event": events.PAYMENT_STATUS_CHANGED,
        "status": to_status,
        "previous_status": from_status,
        "reason": reason,
        "actor": actor,
        "details": dict(details) if details else None,
        # What the event carries, so the publisher needs nothing but the entry.
        "amount": payment["amount"],
        "currency": payment["currency"],
        "source": payment.get("source"),
        "batch_id": payment.get("batch_id"),
    }
    ops = repo.transition_ops(
        payment_id=payment["payment_id"],
        expected_status=from_status,
        expected_version=int(payment["version"]),
        changes=changes,
        history_entry={k: v for k, v in entry.items() if v is not None},
        audit=audit,
        final=to_status in FINAL_STATUSES,
    )
    updated = {
        **payment,
        **changes,
        "version": version,
        "history": [*payment.get("history", []), entry],
    }
    if to_status in FINAL_STATUSES:
        updated.pop("pending_shard", None)
        updated.pop("pending_at", None)
    return Step(payment["payment_id"], ops, updated)


def amount_text(payment: Mapping[str, Any]) -> str:
    return events.amount_text(payment["amount"], payment["currency"])


def public_view(payment: Mapping[str, Any]) -> dict[str, Any]:
    """The payment as ``GET /payments/{id}`` and the API responses show it."""
    view: dict[str, Any] = {
        # The owner's own id: the stored one names the client too (payments.clients).
        "payment_id": clients.split_stored_id(payment["payment_id"])[1],
        "amount": amount_text(payment),
        "currency": payment["currency"],
        "status": payment["status"],
        "reason": payment.get("reason"),
        "source": payment.get("source"),
        "batch_id": payment.get("batch_id"),
    }
    for name in ("customer_id", "merchant_id", "payment_method", "description", "metadata"):
        if payment.get(name) is not None:
            view[name] = payment[name]
    view["created_at"] = payment["created_at"]
    view["updated_at"] = payment["updated_at"]
    view["history"] = [
        {"status": h["status"], "at": h["at"], "reason": h.get("reason")}
        for h in payment.get("history", [])
    ]
    return view
