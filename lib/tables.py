"""The three DynamoDB tables; keys and indexes as docs/CONTRACT.md fixes them."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.dynamodb_resource_policy import DynamodbResourcePolicy
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTableGlobalSecondaryIndex,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
)
from constructs import Construct

from lib.iam import policy_document, statement
from lib.settings import Settings

PAYMENTS = "payments"
PROCESSING_STATUS = "processing-status"
AUDIT_LOG = "audit-log"
# What no principal may do to the audit log (its resource policy): an entry, once put, stays.
AUDIT_LOG_DENIED = (
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "PartiQLUpdate",
    "PartiQLDelete",
    "PartiQLInsert",
)
# Read by `make reconcile --batch` (lambda/payments/reconcile.py), which checks each payment's
# history and batch run: it needs whole items, hence projection ALL.
BATCH_INDEX = "batch_id-index"
# Sparse indexes: only items that carry the index's hash key appear in it. Non-final payments
# carry ``pending_shard`` (and ``pending_at``, their last change or sweep) and running batches
# ``running``; the sweeper and reconcile read them instead of scanning a table.
PENDING_INDEX = "pending-index"
# Final payments that still hold payer fields (``minimise_shard`` / ``final_at``): the sweeper
# removes the fields once the profile's payer_data_days are over.
MINIMISE_INDEX = "minimise-index"
RUNNING_INDEX = "running-index"
TTL_ATTRIBUTE = "expires_at"


@dataclass(frozen=True, kw_only=True)
class _Index:
    name: str
    hash_key: str
    range_key: str
    projection: str = "ALL"
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class _TableSpec:
    hash_key: str
    range_key: str | None = None
    ttl: bool = False
    indexes: tuple[_Index, ...] = ()
    # The audit log is the outbox: its stream feeds the publisher (docs/RUNTIME.md, "Events").
    stream: bool = False


_SPECS = {
    PAYMENTS: _TableSpec(
        hash_key="payment_id",
        indexes=(
            _Index(name=BATCH_INDEX, hash_key="batch_id", range_key="payment_id"),
            _Index(
                name=PENDING_INDEX,
                hash_key="pending_shard",
                range_key="pending_at",
                projection="KEYS_ONLY",
            ),
            _Index(
                name=MINIMISE_INDEX,
                hash_key="minimise_shard",
                range_key="final_at",
                projection="KEYS_ONLY",
            ),
        ),
    ),
    # Batch summaries, rows and chunk plans (chunk plans and markers expire by TTL), and the
    # Idempotency-Key bindings (kept for good, like the payments they name).
    PROCESSING_STATUS: _TableSpec(
        hash_key="pk",
        range_key="sk",
        ttl=True,
        indexes=(
            _Index(
                name=RUNNING_INDEX,
                hash_key="running",
                range_key="started_at",
                projection="INCLUDE",
                non_key_attributes=("batch_id", "run"),
            ),
        ),
    ),
    # The audit trail never expires (PCI DSS 10.5.1).
    AUDIT_LOG: _TableSpec(hash_key="entity_id", range_key="sk", stream=True),
}


class Tables(Construct):
    """Exactly three tables with PITR, the CMK, and profile-driven billing and protection."""

    def __init__(self, scope: Construct, id_: str, *, settings: Settings, kms_key_arn: str):
        super().__init__(scope, id_)
        profile = settings.profile
        if profile.billing_mode != "PAY_PER_REQUEST":
            # Provisioned mode needs capacities and autoscaling targets that no profile asks for.
            raise ValueError(f"billing mode {profile.billing_mode} is not built; see settings.py")
        self.tables: dict[str, DynamodbTable] = {}
        for base, spec in _SPECS.items():
            keys = [spec.hash_key, *([spec.range_key] if spec.range_key else [])]
            for index in spec.indexes:
                keys += [k for k in (index.hash_key, index.range_key) if k not in keys]
            self.tables[base] = DynamodbTable(
                self,
                base,
                name=settings.table_name(base),
                billing_mode=profile.billing_mode,
                hash_key=spec.hash_key,
                range_key=spec.range_key,
                attribute=[DynamodbTableAttribute(name=k, type="S") for k in keys],
                global_secondary_index=[
                    DynamodbTableGlobalSecondaryIndex(
                        name=index.name,
                        hash_key=index.hash_key,
                        range_key=index.range_key,
                        projection_type=index.projection,
                        non_key_attributes=list(index.non_key_attributes) or None,
                    )
                    for index in spec.indexes
                ]
                or None,
                stream_enabled=spec.stream or None,
                stream_view_type="NEW_IMAGE" if spec.stream else None,
                ttl=DynamodbTableTtl(attribute_name=TTL_ATTRIBUTE, enabled=True)
                if spec.ttl
                else None,
                point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
                server_side_encryption=DynamodbTableServerSideEncryption(
                    enabled=True, kms_key_arn=kms_key_arn
                ),
                deletion_protection_enabled=profile.deletion_protection,
            )
        self._audit_log_append_only()

    def _audit_log_append_only(self) -> None:
        """The audit log's resource policy denies every principal (each role of this stack, an
        operator, the account's administrators) every action that changes or removes an entry.

        Entries are only ever put with ``attribute_not_exists`` (every writer, the workflow's
        MarkFailed included; the functional tests watch every write), which IAM cannot require
        of a PutItem; what IAM can refuse outright is refused here, whatever a role's own policy
        allows: UpdateItem, DeleteItem, BatchWriteItem (it cannot be conditional) and PartiQL's
        writes."""
        table = self.audit_log
        document = policy_document(
            self,
            "audit-log-append-only",
            [
                statement(
                    sid="AuditEntriesAreNeverChangedOrRemoved",
                    effect="Deny",
                    actions=[f"dynamodb:{action}" for action in AUDIT_LOG_DENIED],
                    resources=[table.arn],
                    principals={"AWS": ["*"]},
                )
            ],
        )
        DynamodbResourcePolicy(
            self, "audit-log-policy", resource_arn=table.arn, policy=document.json
        )

    @property
    def payments(self) -> DynamodbTable:
        return self.tables[PAYMENTS]

    @property
    def processing_status(self) -> DynamodbTable:
        return self.tables[PROCESSING_STATUS]

    @property
    def audit_log(self) -> DynamodbTable:
        return self.tables[AUDIT_LOG]
