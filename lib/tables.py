"""The three DynamoDB tables; keys and indexes as docs/CONTRACT.md fixes them."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTableGlobalSecondaryIndex,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
)
from constructs import Construct

from lib.settings import Settings

PAYMENTS = "payments"
PROCESSING_STATUS = "processing-status"
AUDIT_LOG = "audit-log"
BATCH_INDEX = "batch_id-index"
TTL_ATTRIBUTE = "expires_at"


@dataclass(frozen=True, kw_only=True)
class _TableSpec:
    hash_key: str
    range_key: str | None = None
    ttl: bool = False
    batch_index: bool = False


_SPECS = {
    PAYMENTS: _TableSpec(hash_key="payment_id", batch_index=True),
    # Batch summaries, rejected rows and Powertools idempotency records; all expire by TTL.
    PROCESSING_STATUS: _TableSpec(hash_key="pk", range_key="sk", ttl=True),
    # The audit trail never expires (PCI DSS 10.5.1).
    AUDIT_LOG: _TableSpec(hash_key="entity_id", range_key="sk"),
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
            if spec.batch_index:
                keys.append("batch_id")
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
                        name=BATCH_INDEX,
                        hash_key="batch_id",
                        range_key="payment_id",
                        projection_type="ALL",
                    )
                ]
                if spec.batch_index
                else None,
                ttl=DynamodbTableTtl(attribute_name=TTL_ATTRIBUTE, enabled=True)
                if spec.ttl
                else None,
                point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
                server_side_encryption=DynamodbTableServerSideEncryption(
                    enabled=True, kms_key_arn=kms_key_arn
                ),
                deletion_protection_enabled=profile.deletion_protection,
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
