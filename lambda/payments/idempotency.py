"""``Idempotency-Key`` on ``POST /payments``: a key names one request, and so one payment, for good.

The first request with a key *binds* it: an item of the processing-status table (its key layout
is the repository's) holding the payment id the request made and the SHA-256 of the request as
validated (``Payment.request_hash``: the normalized body, ``payment_id`` included when sent). The
binding is put with ``attribute_not_exists`` in the very transaction that creates the payment, so
the conditional write decides, not a read before it: two first attempts racing with one key make
one payment, and the other is answered from the binding. Nothing deletes a binding when the
request fails afterwards (``SendMessage`` throttled, the process killed before it answered), and
it has no TTL: a payment is kept for good, and so is the key that made it. Keys are per client
(payments.clients): another client's ``order-1234`` is another binding, and another payment.

A retry with the key and the same request gets the bound payment (200, queued again while still
``RECEIVED``); the key with any other request (other content, another ``payment_id``, or one left
out or added) is a 409 CONFLICT, whatever the body's ``payment_id`` says: the key wins.
"""

from __future__ import annotations

import hashlib
from typing import Any

from payments.clients import DEFAULT_CLIENT
from payments.errors import ConflictError

# 128 bits of the key's SHA-256, the size of the uuid4 the server makes for unkeyed requests.
_KEY_ID_HEX_DIGITS = 32


def payment_id_for_key(key: str) -> str:
    """The payment id of a keyed request without one: ``pay_`` + hex of the key's SHA-256.

    Derived rather than random so that the payment a key made can be found by its id alone too.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()
    return "pay_" + digest[:_KEY_ID_HEX_DIGITS]


def binding(
    key: str, *, payment_id: str, request_hash: str, now: str, client_id: str = DEFAULT_CLIENT
) -> dict[str, Any]:
    """What a key's binding item holds besides its table key (``Repository.key_binding_op``):
    keys are per client, and ``payment_id`` is the stored id (payments.clients)."""
    return {
        "idempotency_key": key,
        "client_id": client_id,
        "payment_id": payment_id,
        "request_hash": request_hash,
        "created_at": now,
    }


def check_same_request(bound: dict[str, Any], key: str, request_hash: str) -> None:
    """Refuse a request that is not the one ``key`` is bound to. The message names the key only:
    nothing of the bound request (its payment, its body) reaches the caller."""
    if bound.get("request_hash") != request_hash:
        raise ConflictError(
            "Idempotency-Key was already used with a different request (another body or "
            "payment_id); resend that very request to retry it, or use a new key",
            details={"Idempotency-Key": key},
        )
