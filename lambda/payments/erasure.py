"""Erasure of one customer's personal data (``make erase ARGS="--customer <id>"``).

What goes:
- the payer fields (``repository.PAYER_FIELDS``: ``customer_id``, ``description``,
  ``metadata``) of every payment made for the customer, each removed by a conditional
  ``UpdateItem`` (only while the payment still names the customer: a rerun changes nothing);
- every stored version of the uploaded files that held one of those payments' rows (the file
  is the input; the payments table and the run's report are the record). Deleting a version
  starts no batch run: the bucket notifies ``ObjectCreated`` only.

What stays: amounts, currencies, statuses, versions, history, ``content_hash`` (a digest, so a
re-upload of the same row is still a duplicate) and the audit trail, which never held payer
fields. Reports hold, per rejected or duplicate row, its line, payment_id, code and reason, never
a payer field, so they need no change (the tests check that none names the customer).

The erasure is audited and published: one insert-only audit entry ``ERASURE#<digest>`` /
``<at>`` (``customer.erased`` on ``payment-events`` through the outbox) with the counts and the
payment ids. The customer id is not in it: the audit log is kept for good, so it records the
SHA-256 of ``customer:<id>`` instead (it proves that a given id was erased; like any unsalted
digest of a guessable id it does not hide which id it was from someone who guesses it).

While a batch holding one of the customer's payments still runs, nothing is erased: its chunks
may still store rows of the file, and the file is still being read.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from payments import events
from payments.batch.states import BATCH_PROCESSING
from payments.batch.uploads import upload_key
from payments.clients import DEFAULT_CLIENT, split_stored_id
from payments.config import Config
from payments.contract import REFERENCE_PATTERN, REFERENCE_RULE
from payments.repository import PAYER_FIELDS, Repository, error_code, read_all

CUSTOMER_ID = re.compile(rf"\A{REFERENCE_PATTERN}\Z")
# The audit entry lists at most this many payment ids (an item holds 400 KB); the count is exact.
MAX_LISTED_IDS = 5_000


def customer_id(text: str) -> str:
    """A customer id as the API takes it; ValueError naming the rule otherwise."""
    if not CUSTOMER_ID.match(text or ""):
        raise ValueError(f"--customer {REFERENCE_RULE}")
    return text


def customer_digest(customer: str, client_id: str = DEFAULT_CLIENT) -> str:
    """The erasure's audit name: customer ids are each client's own (payments.clients), so
    another client's ``cust-1`` is another person (``customer:<client>:<id>``)."""
    if client_id == DEFAULT_CLIENT:
        return hashlib.sha256(f"customer:{customer}".encode()).hexdigest()
    return hashlib.sha256(f"customer:{client_id}:{customer}".encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Erasure:
    customer_digest: str
    client_id: str = DEFAULT_CLIENT
    payment_ids: list[str] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)  # batches still PROCESSING: nothing done
    erased: list[str] = field(default_factory=list)
    uploads_deleted: int = 0
    audit_sk: str | None = None

    @property
    def refused(self) -> bool:
        return bool(self.running)


class Eraser:
    def __init__(self, config: Config, *, repo: Repository | None = None, s3: Any = None) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from payments import aws

            self._s3 = aws.client("s3")
        return self._s3

    # -- finding ----------------------------------------------------------------------------
    def payments_of(self, customer: str, client_id: str = DEFAULT_CLIENT) -> list[dict[str, Any]]:
        """The client's customer's payments: a filtered scan (an operator's read; no request path
        needs a customer index, and keeping one would keep the id in one more place)."""
        found = read_all(
            self.repo.dynamodb,
            "scan",
            TableName=self.config.payments_table,
            FilterExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer}},
            ProjectionExpression="payment_id, batch_id",
            ConsistentRead=True,
        )
        return [p for p in found if split_stored_id(str(p["payment_id"]))[0] == client_id]

    def plan(self, customer: str, client_id: str = DEFAULT_CLIENT) -> Erasure:
        payments = self.payments_of(customer, client_id)
        plan = Erasure(customer_digest(customer, client_id), client_id=client_id)
        plan.payment_ids = sorted(str(p["payment_id"]) for p in payments)
        plan.batch_ids = sorted({str(p["batch_id"]) for p in payments if p.get("batch_id")})
        for batch_id in plan.batch_ids:
            summary = self.repo.get_batch_summary(batch_id) or {}
            if summary.get("status") == BATCH_PROCESSING:
                plan.running.append(batch_id)
        return plan

    # -- erasing ----------------------------------------------------------------------------
    def erase(self, customer: str, client_id: str = DEFAULT_CLIENT) -> Erasure:
        plan = self.plan(customer, client_id)
        if plan.refused:
            return plan
        for payment_id in plan.payment_ids:
            if self._erase_payment(payment_id, customer):
                plan.erased.append(payment_id)
        for batch_id in plan.batch_ids:
            plan.uploads_deleted += self._delete_upload(batch_id)
        if plan.erased or plan.uploads_deleted:
            plan.audit_sk = self._audit(plan)
        return plan

    def _erase_payment(self, payment_id: str, customer: str) -> bool:
        try:
            self.repo.dynamodb.update_item(
                TableName=self.config.payments_table,
                Key={"payment_id": {"S": payment_id}},
                # Out of the minimise-index too: nothing is left for the sweeper to remove.
                UpdateExpression="REMOVE " + ", ".join([*PAYER_FIELDS, "minimise_shard"]),
                ConditionExpression="customer_id = :c",
                ExpressionAttributeValues={":c": {"S": customer}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False  # erased meanwhile (a concurrent run)
            raise
        return True

    def _delete_upload(self, batch_id: str) -> int:
        """Every version and delete marker of the batch's file; how many versions went."""
        key = upload_key(batch_id)
        bucket = self.config.batch_bucket
        deleted = 0
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            versions = [v for v in page.get("Versions", []) if v["Key"] == key]
            markers = [m for m in page.get("DeleteMarkers", []) if m["Key"] == key]
            objects = [{"Key": key, "VersionId": v["VersionId"]} for v in [*versions, *markers]]
            for start in range(0, len(objects), 1000):
                answer = self.s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise RuntimeError(
                        f"{key}: {len(answer['Errors'])} version(s) not deleted "
                        f"({first.get('Code')}: {first.get('Message')})"
                    )
            deleted += len(versions)
        return deleted

    def _audit(self, plan: Erasure) -> str:
        at = _iso(datetime.now(UTC))
        entry = {
            "entity_id": f"{events.ERASURE_PREFIX}{plan.customer_digest}",
            "sk": at,
            "at": at,
            "event": events.CUSTOMER_ERASED,
            "actor": "operator",
            "client_id": plan.client_id,
            "payments": len(plan.erased),
            "payment_ids": plan.erased[:MAX_LISTED_IDS],
            "batch_ids": plan.batch_ids,
            "uploads_deleted": plan.uploads_deleted,
        }
        self.repo.put_audit(entry)
        return at
