"""The transactional outbox: every audit entry becomes exactly one event on ``payment-events``.

Handlers never publish. Each change they make commits its audit entry in the same DynamoDB write
(one transaction for a status change), and the audit log's stream feeds the ``publisher``
function, which maps each *new* entry to its event here and publishes it. A change therefore
cannot commit without its event eventually going out, and an event cannot go out for a change
that did not commit. Delivery is at least once (the stream is retried from the first record whose
publish failed); each event's ``event_id`` is derived from the entry's key, so a consumer drops
the copies.

Every event that changes its entity's state carries the entity's ``version`` (it grows by one
per transition), so ordering is a rule a consumer applies, whatever order SNS and SQS deliver
in: drop an ``event_id`` already seen; apply an event only when its ``version`` is higher than
the one held for that entity (``payment_id``, or ``batch_id``). ``payment.fraud_alert`` carries
the payment's version when the alert was raised and is informational: it changes no state.
Payment and batch events carry the ``client_id`` that owns them, and the client's own
``payment_id`` (the audit entity names the stored id, payments.clients), also as a message
attribute a subscription's filter policy can select.

- ``PAYMENT#<id>`` / ``0001#RECEIVED``: ``payment.received``, event_id ``<id>#1``
- ``PAYMENT#<id>`` / ``<version>#<status>``: ``payment.status_changed``, ``<id>#<version>``
- ``PAYMENT#<id>`` / ``FRAUD_ALERT#<digest>``: ``payment.fraud_alert``,
  ``<id>#FRAUD_ALERT#<digest>``
- ``BATCH#<id>`` / ``<run>#COMPLETED`` or ``<run>#FAILED``: ``batch.completed`` /
  ``batch.failed``, ``BATCH#<id>#<run>#<status>``
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from payments import money
from payments.clients import DEFAULT_CLIENT, split_stored_id

PAYMENT_RECEIVED = "payment.received"
PAYMENT_STATUS_CHANGED = "payment.status_changed"
PAYMENT_FRAUD_ALERT = "payment.fraud_alert"
BATCH_COMPLETED = "batch.completed"
BATCH_FAILED = "batch.failed"
CUSTOMER_ERASED = "customer.erased"
EVENT_TYPES = (
    PAYMENT_RECEIVED,
    PAYMENT_STATUS_CHANGED,
    PAYMENT_FRAUD_ALERT,
    BATCH_COMPLETED,
    BATCH_FAILED,
    CUSTOMER_ERASED,
)
PAYMENT_PREFIX = "PAYMENT#"
BATCH_PREFIX = "BATCH#"
ERASURE_PREFIX = "ERASURE#"
# SNS PublishBatch takes at most ten entries per call.
PUBLISH_BATCH = 10


class UnknownAuditEntry(ValueError):
    """An audit entry no event is defined for: a writer and this module disagree."""


def amount_text(amount: Any, currency: str) -> str:
    """DynamoDB drops trailing zeros (10.00 -> 10); re-apply the currency's minor units."""
    digits = money.minor_units()[currency]
    return money.format_amount(Decimal(amount).quantize(Decimal(1).scaleb(-digits)))


def event_id(entry: Mapping[str, Any]) -> str:
    """The deterministic id of the event an audit entry publishes."""
    entity, sk = str(entry["entity_id"]), str(entry["sk"])
    if entity.startswith(PAYMENT_PREFIX):
        payment_id = entity[len(PAYMENT_PREFIX) :]
        head = sk.split("#", 1)[0]
        if head.isdigit():
            return f"{payment_id}#{int(head)}"
        return f"{payment_id}#{sk}"
    return f"{entity}#{sk}"


def from_audit(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The event for one audit entry (as stored, numbers as ``Decimal``)."""
    kind = entry.get("event")
    entity = str(entry.get("entity_id", ""))
    if kind in (PAYMENT_RECEIVED, PAYMENT_STATUS_CHANGED) and entity.startswith(PAYMENT_PREFIX):
        return {
            "type": kind,
            "event_id": event_id(entry),
            **_owner(entity),
            "version": int(str(entry["sk"]).split("#", 1)[0]),
            "status": entry["status"],
            "previous_status": entry.get("previous_status"),
            "reason": entry.get("reason"),
            "amount": amount_text(entry["amount"], entry["currency"]),
            "currency": entry["currency"],
            "source": entry.get("source"),
            "batch_id": entry.get("batch_id"),
            "at": entry["at"],
        }
    if kind == PAYMENT_FRAUD_ALERT and entity.startswith(PAYMENT_PREFIX):
        details = entry.get("details") or {}
        return {
            "type": kind,
            "event_id": event_id(entry),
            **_owner(entity),
            "status": entry["status"],
            **_version(entry),
            "risk_score": int(details.get("risk_score", 0)),
            "reason": details.get("signal_reason"),
            "amount": amount_text(entry["amount"], entry["currency"]),
            "currency": entry["currency"],
            "at": entry["at"],
        }
    if kind in (BATCH_COMPLETED, BATCH_FAILED) and entity.startswith(BATCH_PREFIX):
        event = {
            "type": kind,
            "event_id": event_id(entry),
            # Batches are the default client's until uploads are owned by their prefix.
            "client_id": DEFAULT_CLIENT,
            "batch_id": entity[len(BATCH_PREFIX) :],
            "version_id": entry.get("run"),
            **_version(entry),
            "status": "COMPLETED" if kind == BATCH_COMPLETED else "FAILED",
            "at": entry["at"],
        }
        for name in ("total_rows", "accepted", "rejected", "duplicates"):
            if entry.get(name) is not None:
                event[name] = int(entry[name])
        for name in ("report_key", "reason_code", "reason"):
            if entry.get(name) is not None:
                event[name] = entry[name]
        return event
    if kind == CUSTOMER_ERASED and entity.startswith(ERASURE_PREFIX):
        # Informational, like a fraud alert: no entity version; dedupe it by event_id.
        return {
            "type": kind,
            "event_id": event_id(entry),
            # Erasures recorded before clients were the default client's.
            "client_id": str(entry.get("client_id") or DEFAULT_CLIENT),
            "customer_digest": entity[len(ERASURE_PREFIX) :],
            "payments": int(entry["payments"]),
            "payment_ids": list(entry.get("payment_ids") or []),
            "uploads_deleted": int(entry.get("uploads_deleted") or 0),
            "batch_ids": list(entry.get("batch_ids") or []),
            "at": entry["at"],
        }
    raise UnknownAuditEntry(f"no event is defined for audit entry {entity}/{entry.get('sk')}")


def _owner(entity: str) -> dict[str, str]:
    """The client that owns a payment and the payment's id in its namespace (payments.clients)."""
    client_id, payment_id = split_stored_id(entity[len(PAYMENT_PREFIX) :])
    return {"client_id": client_id, "payment_id": payment_id}


def _version(entry: Mapping[str, Any]) -> dict[str, int]:
    """``{"version": n}`` when the entry records its entity's version (entries written before
    fraud alerts and batch entries carried one have none)."""
    version = entry.get("version")
    return {} if version is None else {"version": int(version)}


def sns_entry(event: Mapping[str, Any], entry_id: str) -> dict[str, Any]:
    """One ``PublishBatch`` entry; ``event_type`` and ``client_id`` let subscribers filter by
    type and by client (an SNS filter policy on the message attributes)."""
    attributes = {"event_type": {"DataType": "String", "StringValue": str(event["type"])}}
    if event.get("client_id"):
        attributes["client_id"] = {"DataType": "String", "StringValue": str(event["client_id"])}
    return {"Id": entry_id, "Message": money.to_json(event), "MessageAttributes": attributes}
