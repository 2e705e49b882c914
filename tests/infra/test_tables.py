"""Exactly three DynamoDB tables, keyed as docs/CONTRACT.md says."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.dynamodb_resource_policy import DynamodbResourcePolicy
from cdktf_cdktf_provider_aws.dynamodb_table import DynamodbTable

from lib.tables import BATCH_INDEX, MINIMISE_INDEX, PENDING_INDEX, RUNNING_INDEX, TTL_ATTRIBUTE


def _table(synth, base: str) -> dict:
    return next(
        t
        for t in synth.resources(DynamodbTable.TF_RESOURCE_TYPE).values()
        if t["name"] == synth.settings.table_name(base)
    )


class TestTables:
    def test_exactly_three_tables(self, each):
        names = sorted(t["name"] for t in each.resources(DynamodbTable.TF_RESOURCE_TYPE).values())
        suffix = each.settings.suffix
        assert names == sorted(
            [
                f"payments-{suffix}",
                f"payments-processing-status-{suffix}",
                f"payments-audit-log-{suffix}",
            ]
        )

    def test_payments_table_is_keyed_by_payment_id_with_batch_pending_and_minimise_indexes(
        self, each
    ):
        table = _table(each, "payments")
        assert table["hash_key"] == "payment_id" and "range_key" not in table
        assert table["global_secondary_index"] == [
            {
                "name": BATCH_INDEX,
                "hash_key": "batch_id",
                "range_key": "payment_id",
                "projection_type": "ALL",
            },
            # Sparse: only non-final payments carry pending_shard; the sweeper needs the keys.
            {
                "name": PENDING_INDEX,
                "hash_key": "pending_shard",
                "range_key": "pending_at",
                "projection_type": "KEYS_ONLY",
            },
            # Sparse: only final payments still holding payer fields carry minimise_shard.
            {
                "name": MINIMISE_INDEX,
                "hash_key": "minimise_shard",
                "range_key": "final_at",
                "projection_type": "KEYS_ONLY",
            },
        ]
        assert {"name": "pending_shard", "type": "S"} in table["attribute"]
        assert {"name": "final_at", "type": "S"} in table["attribute"]

    def test_index_names_are_the_runtimes(self):
        from payments import repository

        assert (BATCH_INDEX, PENDING_INDEX, MINIMISE_INDEX, RUNNING_INDEX) == (
            repository.BATCH_INDEX,
            repository.PENDING_INDEX,
            repository.MINIMISE_INDEX,
            repository.RUNNING_INDEX,
        )

    def test_processing_status_has_a_sparse_index_of_running_batches(self, each):
        (index,) = _table(each, "processing-status")["global_secondary_index"]
        assert index == {
            "name": RUNNING_INDEX,
            "hash_key": "running",
            "range_key": "started_at",
            "projection_type": "INCLUDE",
            "non_key_attributes": ["batch_id", "run"],
        }

    def test_only_the_audit_log_streams_new_images_the_outbox(self, each):
        assert _table(each, "audit-log")["stream_enabled"] is True
        assert _table(each, "audit-log")["stream_view_type"] == "NEW_IMAGE"
        for base in ("payments", "processing-status"):
            assert "stream_enabled" not in _table(each, base)

    def test_processing_status_table_has_pk_sk_and_ttl(self, each):
        table = _table(each, "processing-status")
        assert (table["hash_key"], table["range_key"]) == ("pk", "sk")
        assert table["ttl"] == {"attribute_name": TTL_ATTRIBUTE, "enabled": True}

    def test_audit_log_never_expires(self, each):
        table = _table(each, "audit-log")
        assert (table["hash_key"], table["range_key"]) == ("entity_id", "sk")
        assert "ttl" not in table

    def test_every_table_has_pitr_and_the_cmk(self, each):
        for table in each.resources(DynamodbTable.TF_RESOURCE_TYPE).values():
            assert table["point_in_time_recovery"] == {"enabled": True}
            assert table["server_side_encryption"]["enabled"] is True
            assert "aws_kms_key" in table["server_side_encryption"]["kms_key_arn"]

    def test_billing_and_deletion_protection_follow_the_profile(self, each):
        for table in each.resources(DynamodbTable.TF_RESOURCE_TYPE).values():
            assert table["billing_mode"] == each.profile.billing_mode
            assert table["deletion_protection_enabled"] is each.profile.deletion_protection

    def test_production_tables_are_protected_and_dev_tables_are_not(self, production, dev):
        assert production.has(DynamodbTable.TF_RESOURCE_TYPE, {"deletion_protection_enabled": True})
        assert not dev.has(DynamodbTable.TF_RESOURCE_TYPE, {"deletion_protection_enabled": True})


class TestAuditLogIsAppendOnly:
    def test_its_resource_policy_denies_every_principal_every_change_or_removal(self, each):
        [policy] = each.resources(DynamodbResourcePolicy.TF_RESOURCE_TYPE).values()
        audit = each.one(DynamodbTable.TF_RESOURCE_TYPE, "audit-log")
        assert policy["resource_arn"].endswith(".arn}")
        assert "audit-log" in policy["resource_arn"]
        document = each.data("aws_iam_policy_document")[policy["policy"].split(".")[2]]
        [deny] = document["statement"]
        assert deny["effect"] == "Deny"
        assert deny["principals"] == [{"type": "AWS", "identifiers": ["*"]}]
        assert "condition" not in deny
        assert set(deny["actions"]) == {
            "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
            "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert",
        }  # fmt: skip
        assert audit["name"].startswith("payments-audit-log-")

    def test_no_role_is_allowed_more_than_putting_and_reading_entries(self, each):
        audit = next(k for k in each.resources(DynamodbTable.TF_RESOURCE_TYPE) if "audit-log" in k)
        writes = set()
        for document in each.data("aws_iam_policy_document").values():
            for s in document["statement"]:
                if s.get("effect", "Allow") != "Allow":
                    continue
                if f"${{aws_dynamodb_table.{audit}.arn}}" in s.get("resources", []):
                    writes |= {a for a in s["actions"] if not a.startswith(
                        ("dynamodb:Get", "dynamodb:Query", "dynamodb:Describe"))}  # fmt: skip
        assert writes == {"dynamodb:PutItem"}, writes
