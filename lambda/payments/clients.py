"""API clients: who is calling, and the namespace each one's payments and keys live in.

A client is a named caller (``acme``, ``fraud-provider``) with its own API key and usage plan
(made by ``make client``, scripts/client.py) and a status. Two items of the processing-status
table describe it (their keys are the repository's), written together in one transaction: the
client (``client_id``, ``kind``, ``status``, ``key_id``, ``usage_plan_id``, limits) and its key's
item (API Gateway's ``apiKeyId`` -> ``client_id``, ``kind``, ``status``), which the API reads.

The deployment's own key (Terraform's, from before clients existed) is the ``default`` client:
its key id reaches the API function as DEFAULT_API_KEY_ID, and its status can still be set
(``make client suspend default``). The API function keeps what it looked up for
CLIENT_CACHE_SECONDS, the bound on how long a suspended or removed client's key keeps working.

Ownership is in the stored ids, so that nothing of one client can be named by another:

- a payment of client ``acme`` with id ``order-1`` is stored as ``acme.order-1`` (``.`` is in no
  payment id, and no client id); the ``default`` client's payments keep their bare ids, so the
  data of an environment from before clients is the default client's as it stands;
- an ``Idempotency-Key`` of ``acme`` is bound under ``CLIENTKEY#acme#<key>`` (``#`` is in no
  client id), the default client's under ``IDEMPOTENCY#<key>`` as before.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from payments.contract import CLIENT_ID_PATTERN, PAYMENT_ID_PATTERN
from payments.contract import CLIENT_ID_RULE as CLIENT_ID_RULE

DEFAULT_CLIENT = "default"
CLIENT_ID = re.compile(rf"\A(?:{CLIENT_ID_PATTERN})\Z")
# What a client may call: every route but the fraud webhook, or only the fraud webhook.
KIND_API = "api"
KIND_FRAUD_WEBHOOK = "fraud-webhook"
KINDS = (KIND_API, KIND_FRAUD_WEBHOOK)
ACTIVE = "ACTIVE"
SUSPENDED = "SUSPENDED"
# How long the API function trusts what it looked up: a suspension takes at most this long.
CLIENT_CACHE_SECONDS = 30
STORED_ID_SEPARATOR = "."
# A payments-table key: a client's payment id, after its client's id unless the default's.
STORED_PAYMENT_ID_PATTERN = (
    rf"(?:{CLIENT_ID_PATTERN}{re.escape(STORED_ID_SEPARATOR)})?{PAYMENT_ID_PATTERN}"
)


@dataclass(frozen=True)
class Client:
    client_id: str
    kind: str = KIND_API
    status: str = ACTIVE

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def may_call(self, route_path: str) -> bool:
        """The default client may call every route (an existing fraud provider uses its key);
        a fraud-webhook client only the webhook, an API client everything else."""
        if self.client_id == DEFAULT_CLIENT:
            return True
        return (route_path == "/fraud-webhook") == (self.kind == KIND_FRAUD_WEBHOOK)

    # -- the client's namespace ---------------------------------------------------------------
    def stored_id(self, payment_id: str) -> str:
        """The payments table's key for this client's ``payment_id``."""
        return stored_payment_id(self.client_id, payment_id)


# The caller of the code paths that have no API caller (batches, operators, older tests).
DEFAULT = Client(DEFAULT_CLIENT)


def stored_payment_id(client_id: str, payment_id: str) -> str:
    if client_id == DEFAULT_CLIENT:
        return payment_id
    return f"{client_id}{STORED_ID_SEPARATOR}{payment_id}"


def stored_id_of(event: Mapping[str, Any]) -> str:
    """The stored id of the payment an event is about (it names the client and its own id)."""
    return stored_payment_id(
        str(event.get("client_id") or DEFAULT_CLIENT), str(event["payment_id"])
    )


def split_stored_id(stored: str) -> tuple[str, str]:
    """(client id, the client's payment id) of a stored payment id."""
    owner, separator, payment_id = stored.partition(STORED_ID_SEPARATOR)
    return (owner, payment_id) if separator else (DEFAULT_CLIENT, stored)


def from_item(item: dict[str, Any]) -> Client:
    return Client(
        client_id=str(item["client_id"]),
        kind=str(item.get("kind", KIND_API)),
        status=str(item.get("status", ACTIVE)),
    )


class Directory:
    """API key id -> client, each answer kept for ``ttl`` seconds (per Lambda environment).

    ``read_key(key_id)`` and ``read_client(client_id)`` return the stored item or None; the
    deployment's key (``default_key_id``) needs no key map. An unknown key id (a key made outside
    ``make client``, or one removed) resolves to None, which the API refuses.
    """

    def __init__(
        self,
        *,
        default_key_id: str | None,
        read_key: Callable[[str], dict[str, Any] | None],
        read_client: Callable[[str], dict[str, Any] | None],
        ttl: float = CLIENT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_key_id = default_key_id
        self._read_key = read_key
        self._read_client = read_client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, key_id: str | None) -> Client | None:
        if not key_id:
            return None
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        client = self._lookup(key_id)
        with self._lock:
            self._cache[key_id] = (now, client)
        return client

    def _lookup(self, key_id: str) -> Client | None:
        if key_id == self.default_key_id:
            stored = self._read_client(DEFAULT_CLIENT)
            return from_item(stored) if stored else Client(DEFAULT_CLIENT)
        # The key's own item carries its client (written with the client, in one transaction),
        # so one read identifies the caller; a rotation deletes the old key's item.
        mapping = self._read_key(key_id)
        return from_item(mapping) if mapping else None
