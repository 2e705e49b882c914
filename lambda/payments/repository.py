"""Storage over the three tables; the only module that knows their keys (docs/RUNTIME.md). It is
one idea: every key and request over the tables in one place, so no other module builds one.

- payments: ``payment_id``; sparse GSI ``batch_id-index`` (``batch_id``, ``payment_id``).
- processing-status: ``pk``/``sk``: ``BATCH#<id>``/``SUMMARY``, ``REJECT#<run>#<line>``,
  ``DUPLICATE#<run>#<line>``, a run's chunk plan ``PLAN#<run>#<chunk>#<part>`` and applied-chunk
  markers ``CHUNK#<run>#<chunk>`` (both TTL ``expires_at``), and ``IDEMPOTENCY#<key>``/``BINDING``:
  the payment an ``Idempotency-Key`` made and its request's hash (no TTL; ``payments.idempotency``;
  another client's keys are ``CLIENTKEY#<client>#<key>``), and the API clients
  (``payments.clients``): ``CLIENTS``/``CLIENT#<id>`` and ``APIKEY#<key id>``/``CLIENT``.
- audit-log: ``entity_id``/``sk``, where ``sk`` is deterministic per event (``0002#PROCESSING``) so
  a retried write is refused by its condition instead of duplicating the trail.

It uses the low-level client (transactions need it) with boto3's TypeSerializer, which maps
numbers to ``Decimal`` both ways, so money never passes through a float.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from payments import aws
from payments.clients import DEFAULT_CLIENT
from payments.config import Config
from payments.errors import TransientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
# Error codes a retry (ours, the SDK's or Step Functions') can fix: any service's, and the
# reasons a cancelled transaction gives for items that conflicted or were throttled.
TRANSIENT_CODES = aws.RETRYABLE_CODES | {"TransactionConflict", "ThrottlingError"}

SUMMARY_SK = "SUMMARY"
BINDING_SK = "BINDING"
CLIENT_SK = "CLIENT"
# Every client in one partition: `make client list` is one query, never a scan of the table.
CLIENTS_PK = "CLIENTS"
# The sparse index of non-final payments (``pending_shard`` / ``updated_at``); 16 partition keys
# spread a burst of new payments, and the sweeper reads all 16.
BATCH_INDEX = "batch_id-index"
PENDING_INDEX = "pending-index"
PENDING_SHARDS = 16
# The sparse index of final payments that still hold payer fields (``minimise_shard`` /
# ``final_at``): the sweeper removes those fields once the profile's payer-data days are over.
MINIMISE_INDEX = "minimise-index"
# The payer's personal fields of a payment; amounts, statuses and history are not among them.
PAYER_FIELDS = ("customer_id", "description", "metadata")
# The sparse index of batches still running (``running`` / ``started_at``): few at a time.
RUNNING_INDEX = "running-index"
RUNNING = "BATCH"
# BatchGetItem takes at most 100 keys; unprocessed keys are asked again this many times.
_KEYS_PER_BATCH_GET = 100
_BATCH_GET_ATTEMPTS = 5


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_transient(exc: ClientError) -> bool:
    return error_code(exc) in TRANSIENT_CODES


def batch_pk(batch_id: str) -> str:
    return f"BATCH#{batch_id}"


def payment_entity(payment_id: str) -> str:
    return f"PAYMENT#{payment_id}"


def idempotency_pk(key: str, client_id: str = DEFAULT_CLIENT) -> str:
    """A key's binding, in its client's namespace (payments.clients)."""
    if client_id == DEFAULT_CLIENT:
        return f"IDEMPOTENCY#{key}"
    return f"CLIENTKEY#{client_id}#{key}"


def client_key(client_id: str) -> tuple[str, str]:
    """(pk, sk) of a client's item."""
    return CLIENTS_PK, f"CLIENT#{client_id}"


def api_key_pk(key_id: str) -> str:
    return f"APIKEY#{key_id}"


def _version_condition(version: int) -> dict[str, Any]:
    """The stored item is at ``version`` (0: there is none)."""
    if version == 0:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "version = :version",
        "ExpressionAttributeValues": {":version": {"N": str(version)}},
    }


def _pk_sk(key: tuple[str, str]) -> dict[str, str]:
    return {"pk": key[0], "sk": key[1]}


def audit_sk(version: int, status: str) -> str:
    return f"{version:04d}#{status}"


# Duplicate pairs ("line:first;...", ~15 bytes each) per plan item: ~150 KB, under 400 KB.
PLAN_PAIRS_PER_ITEM = 10_000


def chunk_sk(run: str, index: int) -> str:
    """The marker of a chunk whose counts were added to the run's summary."""
    return f"CHUNK#{run}#{index:06d}"


def plan_sk(run: str, index: int, part: int | None) -> str:
    """A part of chunk ``index``'s plan (its duplicate lines); ``part`` None: the prefix."""
    prefix = f"PLAN#{run}#{index:06d}#"
    return prefix if part is None else f"{prefix}{part:04d}"


def row_sk(kind: str, run: str, line: int) -> str:
    """Rows are keyed per run: a superseded run's late chunk writes beside the newer run's rows,
    never over them, and reading one run's rows is one key range."""
    return f"{kind}#{run}#{line:010d}"


class TransactionCanceled(Exception):
    """A transaction was cancelled; ``reasons`` has one entry per item (``Code``, ``Item``)."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__(", ".join(r.get("Code", "None") for r in reasons))
        self.reasons = reasons

    def failed_conditions(self) -> dict[int, dict[str, Any] | None]:
        """Index of each item whose condition failed -> the existing item, when returned."""
        return {
            i: (deserialize(r["Item"]) if r.get("Item") else None)
            for i, r in enumerate(self.reasons)
            if r.get("Code") == "ConditionalCheckFailed"
        }


def read_all(dynamodb: Any, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a ``scan`` or ``query`` finds, page after page, deserialized (operators' reads:
    reconcile, republish, erase; the request paths use ``Repository._query``)."""
    out: list[dict[str, Any]] = []
    while True:
        page = getattr(dynamodb, operation)(**kwargs)
        out += [deserialize(item) for item in page.get("Items", [])]
        if not page.get("LastEvaluatedKey"):
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class Repository:
    def __init__(self, config: Config, *, dynamodb: Any = None) -> None:
        self.config = config
        self._dynamodb = dynamodb

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

    # -- payments ---------------------------------------------------------------------------
    def get_payment(self, payment_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        response = self._call(
            "get_item",
            TableName=self.config.payments_table,
            Key={"payment_id": {"S": payment_id}},
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def get_payments(self, payment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Strongly consistent reads of many payments (``BatchGetItem``, 100 keys a call); the
        ones that exist, by id. Keys DynamoDB leaves unprocessed (throttling) are asked again a
        few times, then the call fails as transient."""
        found: dict[str, dict[str, Any]] = {}
        table = self.config.payments_table
        for start in range(0, len(payment_ids), _KEYS_PER_BATCH_GET):
            ids = payment_ids[start : start + _KEYS_PER_BATCH_GET]
            keys = [{"payment_id": {"S": payment_id}} for payment_id in ids]
            request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
            for attempt in range(_BATCH_GET_ATTEMPTS):
                response = self._call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(table, []):
                    payment = deserialize(item)
                    found[payment["payment_id"]] = payment
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                aws.backoff(attempt)
            else:
                raise TransientError("DynamoDB left payment reads unprocessed; retry")
        return found

    def create_payment_ops(self, item: Mapping[str, Any], audit: Mapping[str, Any]) -> list[dict]:
        """The two transaction items that create a payment and its first audit entry."""
        return [
            {
                "Put": {
                    "TableName": self.config.payments_table,
                    "Item": serialize(item),
                    "ConditionExpression": "attribute_not_exists(payment_id)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            self.audit_put_op(audit),
        ]

    def key_binding_op(self, binding: Mapping[str, Any]) -> dict[str, Any]:
        """The transaction item binding an ``Idempotency-Key`` to the payment created with it:
        put only if the key is unbound, the existing binding returned when it is not."""
        pk = idempotency_pk(binding["idempotency_key"], binding.get("client_id", DEFAULT_CLIENT))
        key = {"pk": pk, "sk": BINDING_SK}
        return {
            "Put": {
                "TableName": self.config.processing_status_table,
                "Item": serialize({**key, **binding}),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def bind_key(self, binding: Mapping[str, Any]) -> dict[str, Any] | None:
        """Bind a key on its own (to a payment that existed before it); None when this bound
        it, else the binding that was already there."""
        put = self.key_binding_op(binding)["Put"]
        try:
            self._call("put_item", **put)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            item = exc.response.get("Item")
            if item:
                return deserialize(item)
            client_id = binding.get("client_id", DEFAULT_CLIENT)
            return self.get_key_binding(binding["idempotency_key"], client_id)
        return None

    def get_key_binding(self, key: str, client_id: str = DEFAULT_CLIENT) -> dict[str, Any] | None:
        response = self._call(
            "get_item",
            TableName=self.config.processing_status_table,
            Key={"pk": {"S": idempotency_pk(key, client_id)}, "sk": {"S": BINDING_SK}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    # -- API clients (payments.clients) ----------------------------------------------------------
    def get_client(self, client_id: str) -> dict[str, Any] | None:
        return self._status_item(*client_key(client_id))

    def get_key_client(self, key_id: str) -> dict[str, Any] | None:
        """An API key's client (``client_id``, ``kind``, ``status``), or None."""
        return self._status_item(api_key_pk(key_id), CLIENT_SK)

    def list_clients(self) -> list[dict[str, Any]]:
        """Every client item, by id (one partition: a query)."""
        return read_all(
            self.dynamodb,
            "query",
            TableName=self.config.processing_status_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": CLIENTS_PK}},
            ConsistentRead=True,
        )

    def client_ops(
        self, client: Mapping[str, Any], *, old_key_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Put the client and its key's item, deleting ``old_key_id``'s. Every change of a
        client is one ``version`` up from the one it read (1: the client is new), so two
        operators' commands never both win: the second finds the version moved and changes
        nothing."""
        table = self.config.processing_status_table
        condition = _version_condition(int(client["version"]) - 1)
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": table,
                    "Item": serialize({**_pk_sk(client_key(client["client_id"])), **client}),
                    **condition,
                }
            }
        ]
        if client.get("key_id"):
            # What the API needs to know of the caller, in the one item it reads.
            key_map = {name: client[name] for name in ("client_id", "kind", "status", "key_id")}
            ops.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": serialize(
                            {"pk": api_key_pk(client["key_id"]), "sk": CLIENT_SK, **key_map}
                        ),
                    }
                }
            )
        if old_key_id and old_key_id != client.get("key_id"):
            ops.append(self._delete_op(api_key_pk(old_key_id), CLIENT_SK))
        return ops

    def put_default_client(self, client: Mapping[str, Any]) -> None:
        """The default client's status (its key is the deployment's: no key map)."""
        item = {**_pk_sk(client_key(DEFAULT_CLIENT)), **client}
        self._call("put_item", TableName=self.config.processing_status_table, Item=serialize(item))

    def remove_client_ops(
        self, client_id: str, key_id: str | None, *, version: int
    ) -> list[dict[str, Any]]:
        """Delete the client as read (at ``version``) and its key's item."""
        ops = [self._delete_op(*client_key(client_id))]
        ops[0]["Delete"].update(_version_condition(version))
        if key_id:
            ops.append(self._delete_op(api_key_pk(key_id), CLIENT_SK))
        return ops

    def _delete_op(self, pk: str, sk: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.config.processing_status_table,
                "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
            }
        }

    def _status_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item",
            TableName=self.config.processing_status_table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def audit_put_op(self, audit: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.config.audit_log_table,
                "Item": serialize(audit),
                "ConditionExpression": "attribute_not_exists(entity_id)",
            }
        }

    def transition_ops(
        self,
        *,
        payment_id: str,
        expected_status: str,
        expected_version: int,
        changes: Mapping[str, Any],
        history_entry: Mapping[str, Any],
        audit: Mapping[str, Any],
        final: bool = False,
    ) -> list[dict[str, Any]]:
        names = {"#status": "status", "#version": "version"}
        values: dict[str, Any] = {
            ":expected": expected_status,
            ":expected_version": expected_version,
            ":history": [dict(history_entry)],
        }
        sets = ["#version = #version + :one", "history = list_append(history, :history)"]
        values[":one"] = 1
        for i, (name, value) in enumerate(changes.items()):
            names[f"#c{i}"] = name
            values[f":c{i}"] = value
            sets.append(f"#c{i} = :c{i}")
        return [
            {
                "Update": {
                    "TableName": self.config.payments_table,
                    "Key": {"payment_id": {"S": payment_id}},
                    # A final payment leaves the sparse pending-index (nothing left to sweep).
                    "UpdateExpression": "SET "
                    + ", ".join(sets)
                    + (" REMOVE pending_shard, pending_at" if final else ""),
                    "ConditionExpression": "#status = :expected AND #version = :expected_version",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {
                        k: _serializer.serialize(v) for k, v in values.items()
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            self.audit_put_op(audit),
        ]

    def transact(self, ops: list[dict[str, Any]]) -> None:
        """Run one transaction; a cancellation becomes ``TransactionCanceled`` with its reasons.

        Cancellations caused only by conflicts or throttling (no failed condition) are
        transient and raised as ``TransientError`` so the caller's retry policy applies.
        """
        try:
            self.dynamodb.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise _translate(exc) from exc
            reasons = exc.response.get("CancellationReasons") or []
            if not any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                raise TransientError(
                    "DynamoDB transaction cancelled: " + str(exc),
                    details={"reasons": [r.get("Code") for r in reasons]},
                ) from exc
            raise TransactionCanceled(reasons) from exc

    def put_audit(self, audit: Mapping[str, Any]) -> bool:
        """Write one audit entry unless it exists; False when it already did (a retry)."""
        try:
            self._call(
                "put_item",
                TableName=self.config.audit_log_table,
                Item=serialize(audit),
                ConditionExpression="attribute_not_exists(entity_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def audit_trail(self, entity_id: str) -> list[dict[str, Any]]:
        return list(
            self._query(
                TableName=self.config.audit_log_table,
                KeyConditionExpression="entity_id = :e",
                ExpressionAttributeValues={":e": {"S": entity_id}},
                ConsistentRead=True,
            )
        )

    # -- batches ----------------------------------------------------------------------------
    def register_batch(self, item: Mapping[str, Any]) -> bool:
        """Start a run of a batch unless that run or a newer upload (a greater ``sequencer``)
        is already registered (False).

        S3 events arrive out of order and a throttled trigger is retried minutes later; the
        object's ``sequencer`` orders its uploads, so an older run is refused instead of
        replacing the newer one. The caller handles a retried registration of the same run
        (it reads the summary first), so this never resets a run that has made progress.
        ``item["version"]`` must be above the summary's: a batch's version only grows, so its
        events order by it (False too when the summary moved on since the caller read it).
        """
        values = {":run": {"S": item["run"]}, ":version": {"N": str(item["version"])}}
        newer = ""
        if item.get("sequencer"):
            # An upload without a sequencer (unknown order) is taken as the newest.
            newer = " AND (attribute_not_exists(sequencer) OR sequencer < :sequencer)"
            values[":sequencer"] = {"S": item["sequencer"]}
        try:
            self._call(
                "put_item",
                TableName=self.config.processing_status_table,
                Item=serialize({"pk": batch_pk(item["batch_id"]), "sk": SUMMARY_SK, **item}),
                ConditionExpression=(
                    f"attribute_not_exists(pk) OR (#run <> :run{newer} AND "
                    "(attribute_not_exists(#version) OR #version < :version))"
                ),
                ExpressionAttributeNames={"#run": "run", "#version": "version"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def run_current_check(self, batch_id: str, run: str) -> dict[str, Any]:
        """A transaction item that holds only while ``run`` is the batch's run and PROCESSING:
        whatever commits with it was written by a current run, at the moment of the write."""
        return {
            "ConditionCheck": {
                "TableName": self.config.processing_status_table,
                "Key": {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": SUMMARY_SK}},
                "ConditionExpression": "#run = :run AND #status = :processing",
                "ExpressionAttributeNames": {"#run": "run", "#status": "status"},
                "ExpressionAttributeValues": {
                    ":run": {"S": run},
                    ":processing": {"S": "PROCESSING"},
                },
            }
        }

    def get_batch_summary(self, batch_id: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item",
            TableName=self.config.processing_status_table,
            Key={"pk": {"S": batch_pk(batch_id)}, "sk": {"S": SUMMARY_SK}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def apply_chunk(
        self, *, batch_id: str, run: str, index: int, counts: Mapping[str, int], expires_at: int
    ) -> bool:
        """Add a chunk's counts to the run's summary once, whatever the order chunks finish in.

        One transaction: the chunk's marker (``CHUNK#<run>#<index>``, put only if absent) and
        the summary's ``ADD`` (only while this run is the batch's and PROCESSING). A retried
        chunk finds its marker and adds nothing (True: its counts are in). False when a newer
        upload replaced the run or the run already ended (the sweeper timed it out).
        """
        now = now_iso()
        marker = {
            "pk": batch_pk(batch_id),
            "sk": chunk_sk(run, index),
            "run": run,
            "index": index,
            **counts,
            "applied_at": now,
            "expires_at": expires_at,
        }
        values: dict[str, Any] = {
            ":run": run,
            ":processing": "PROCESSING",
            ":now": now,
            ":one": 1,
        }
        adds = ["chunks_done :one"]
        for name, value in counts.items():
            values[f":{name}"] = value
            adds.append(f"{name} :{name}")
        try:
            self.transact(
                [
                    {
                        "Put": {
                            "TableName": self.config.processing_status_table,
                            "Item": serialize(marker),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.config.processing_status_table,
                            "Key": {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": SUMMARY_SK}},
                            "UpdateExpression": "SET updated_at = :now ADD " + ", ".join(adds),
                            "ConditionExpression": "#run = :run AND #status = :processing",
                            "ExpressionAttributeNames": {"#run": "run", "#status": "status"},
                            "ExpressionAttributeValues": {
                                k: _serializer.serialize(v) for k, v in values.items()
                            },
                        }
                    },
                ]
            )
        except TransactionCanceled as exc:
            # The marker exists: an earlier attempt of this chunk added its counts (True).
            return 0 in exc.failed_conditions()
        return True

    def chunk_applied(self, batch_id: str, run: str, index: int) -> bool:
        """Whether the chunk's counts are in (its marker exists): a retry has nothing left to do."""
        response = self._call(
            "get_item",
            TableName=self.config.processing_status_table,
            Key={"pk": {"S": batch_pk(batch_id)}, "sk": {"S": chunk_sk(run, index)}},
            ConsistentRead=True,
            ProjectionExpression="pk",
        )
        return "Item" in response

    def put_plan(
        self,
        batch_id: str,
        run: str,
        index: int,
        duplicates: list[tuple[int, int]],
        expires_at: int,
    ) -> None:
        """Store which lines of chunk ``index`` repeat an earlier line's payment_id (pairs of
        line and earlier line), ``PLAN_PAIRS_PER_ITEM`` pairs per item (items stay far below
        DynamoDB's 400 KB). Puts keyed by chunk and part: a re-plan writes the same items."""
        items = [
            {
                "sk": plan_sk(run, index, part),
                "run": run,
                "index": index,
                "duplicates": ";".join(
                    f"{line}:{first}"
                    for line, first in duplicates[start : start + PLAN_PAIRS_PER_ITEM]
                ),
                "expires_at": expires_at,
            }
            for part, start in enumerate(range(0, len(duplicates), PLAN_PAIRS_PER_ITEM))
        ]
        self.put_row_outcomes(batch_id, items)

    def plan_duplicates(self, batch_id: str, run: str, index: int) -> dict[int, int]:
        """Chunk ``index``'s duplicate lines -> the line of the payment_id's first valid row."""
        found: dict[int, int] = {}
        for item in self._query(
            TableName=self.config.processing_status_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": batch_pk(batch_id)},
                ":prefix": {"S": plan_sk(run, index, None)},
            },
            ConsistentRead=True,
        ):
            for pair in str(item.get("duplicates") or "").split(";"):
                if pair:
                    line, first = pair.split(":")
                    found[int(line)] = int(first)
        return found

    def update_batch_summary(
        self,
        batch_id: str,
        run: str,
        changes: Mapping[str, Any],
        *,
        remove: tuple[str, ...] = (),
        audit: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change the summary of ``run`` while it is PROCESSING (False when a newer run replaced
        it or it already ended); with ``audit``, the change and its audit entry commit together
        (the outbox publishes the entry)."""
        names = {"#run": "run", "#status": "status"}
        values: dict[str, Any] = {":run": run, ":processing": "PROCESSING"}
        sets = []
        for i, (name, value) in enumerate(changes.items()):
            names[f"#c{i}"] = name
            values[f":c{i}"] = value
            sets.append(f"#c{i} = :c{i}")
        update = {
            "TableName": self.config.processing_status_table,
            "Key": {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": SUMMARY_SK}},
            "UpdateExpression": "SET "
            + ", ".join(sets)
            + (" REMOVE " + ", ".join(remove) if remove else ""),
            "ConditionExpression": "#run = :run AND #status = :processing",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: _serializer.serialize(v) for k, v in values.items()},
        }
        if audit is None:
            try:
                self._call("update_item", **update)
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
            return True
        try:
            self.transact([{"Update": update}, self.audit_put_op(audit)])
        except TransactionCanceled as exc:
            if 0 in exc.failed_conditions():
                return False
            # Only the audit entry exists: an earlier attempt committed both (a retry).
        return True

    def put_row_outcomes(self, batch_id: str, items: list[dict[str, Any]]) -> None:
        """Store rejected / duplicate rows (idempotent puts keyed by line), 25 per request."""
        table = self.config.processing_status_table
        for start in range(0, len(items), 25):
            requests = [
                {"PutRequest": {"Item": serialize({"pk": batch_pk(batch_id), **item})}}
                for item in items[start : start + 25]
            ]
            pending = {table: requests}
            for attempt in range(8):
                response = self._call("batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                aws.backoff(attempt)
            else:
                raise TransientError("DynamoDB kept returning unprocessed items")

    def row_outcomes(
        self, batch_id: str, kind: str, run: str, *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """One run's rejected or duplicate rows in line order: one key range, no filtering."""
        kwargs: dict[str, Any] = {}
        if limit is not None:
            kwargs["Limit"] = max(1, min(limit, 1000))
        for count, item in enumerate(
            self._query(
                TableName=self.config.processing_status_table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": {"S": batch_pk(batch_id)},
                    ":prefix": {"S": f"{kind}#{run}#"},
                },
                ConsistentRead=True,
                **kwargs,
            )
        ):
            if limit is not None and count >= limit:
                return
            yield item

    def pending_payments(self, shard: str, updated_before: str, *, limit: int) -> list[dict]:
        """Non-final payments of one ``pending-index`` shard unchanged since ``updated_before``."""
        found: list[dict[str, Any]] = []
        for item in self._query(
            TableName=self.config.payments_table,
            IndexName=PENDING_INDEX,
            KeyConditionExpression="pending_shard = :shard AND pending_at < :before",
            ExpressionAttributeValues={
                ":shard": {"S": shard},
                ":before": {"S": updated_before},
            },
            Limit=min(limit, 1000),
        ):
            found.append(item)
            if len(found) >= limit:
                break
        return found

    def payments_to_minimise(self, shard: str, final_before: str, *, limit: int) -> list[dict]:
        """Final payments of one ``minimise-index`` shard that became final before
        ``final_before`` and still hold payer fields (keys only)."""
        found: list[dict[str, Any]] = []
        for item in self._query(
            TableName=self.config.payments_table,
            IndexName=MINIMISE_INDEX,
            KeyConditionExpression="minimise_shard = :shard AND final_at < :before",
            ExpressionAttributeValues={":shard": {"S": shard}, ":before": {"S": final_before}},
            Limit=min(limit, 1000),
        ):
            found.append(item)
            if len(found) >= limit:
                break
        return found

    def minimise(self, payment_id: str) -> bool:
        """Remove a final payment's payer fields, and it from ``minimise-index``; False when
        there was nothing to remove (done already, or erased meanwhile)."""
        try:
            self._call(
                "update_item",
                TableName=self.config.payments_table,
                Key={"payment_id": {"S": payment_id}},
                UpdateExpression="REMOVE " + ", ".join([*PAYER_FIELDS, "minimise_shard"]),
                ConditionExpression="attribute_exists(minimise_shard)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def batch_payments(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Every payment a batch stored (any run), from the ``batch_id-index``."""
        return self._query(
            TableName=self.config.payments_table,
            IndexName=BATCH_INDEX,
            KeyConditionExpression="batch_id = :b",
            ExpressionAttributeValues={":b": {"S": batch_id}},
        )

    def mark_swept(self, payment_id: str, now: str) -> bool:
        """Restart a non-final payment's ``pending_at`` clock after the sweeper queued it, so
        the next runs leave it alone for a threshold (False: it became final meanwhile)."""
        try:
            self._call(
                "update_item",
                TableName=self.config.payments_table,
                Key={"payment_id": {"S": payment_id}},
                UpdateExpression="SET pending_at = :now",
                ConditionExpression="attribute_exists(pending_shard)",
                ExpressionAttributeValues={":now": {"S": now}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def running_batches(self, started_before: str) -> list[dict[str, Any]]:
        """Batch summaries still running that started before ``started_before``."""
        return list(
            self._query(
                TableName=self.config.processing_status_table,
                IndexName=RUNNING_INDEX,
                KeyConditionExpression="running = :running AND started_at < :before",
                ExpressionAttributeValues={
                    ":running": {"S": RUNNING},
                    ":before": {"S": started_before},
                },
            )
        )

    def check(self) -> None:
        """A cheap read of each table (health check); raises when one is unreachable."""
        for table in (
            self.config.payments_table,
            self.config.processing_status_table,
            self.config.audit_log_table,
        ):
            self._call("describe_table", TableName=table)

    # -- helpers ----------------------------------------------------------------------------
    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                yield deserialize(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self.dynamodb, operation)(**kwargs)
        except ClientError as exc:
            if is_transient(exc):
                raise _translate(exc) from exc
            raise


def _translate(exc: ClientError) -> Exception:
    if is_transient(exc):
        code = error_code(exc)
        return TransientError(f"DynamoDB {code}: {exc}", details={"aws": code})
    return exc


def to_int(value: Any) -> int:
    return int(value) if isinstance(value, Decimal | int) else 0
