"""Batch bucket, audit archive and access-log bucket."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
)
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_notification import S3BucketNotification
from cdktf_cdktf_provider_aws.s3_bucket_object_lock_configuration import (
    S3BucketObjectLockConfigurationA,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import S3BucketOwnershipControls
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA

from lib.settings import PROFILES
from lib.storage import ABORT_INCOMPLETE_UPLOAD_DAYS, AUDIT_ARCHIVE_PREFIX


def _rules(synth, id_part: str) -> dict[str, dict]:
    config = synth.one(S3BucketLifecycleConfiguration.TF_RESOURCE_TYPE, id_part)
    return {rule["id"]: rule for rule in config["rule"]}


class TestBatchBucket:
    def test_three_buckets_named_with_the_suffix(self, each):
        names = sorted(b["bucket"] for b in each.resources(S3Bucket.TF_RESOURCE_TYPE).values())
        # Bucket names are global: the account id (a data source) follows the suffix.
        assert [n.partition("-${")[0] for n in names] == [
            f"payments-{base}-{each.settings.suffix}"
            for base in ("access-logs", "audit-archive", "batch")
        ]

    def test_every_bucket_is_versioned(self, each):
        configs = each.resources(S3BucketVersioningA.TF_RESOURCE_TYPE).values()
        assert [c["versioning_configuration"]["status"] for c in configs] == ["Enabled"] * 3

    def test_batch_bucket_uses_the_cmk_with_a_bucket_key(self, each):
        rule = each.one(S3BucketServerSideEncryptionConfigurationA.TF_RESOURCE_TYPE, "batch")[
            "rule"
        ][0]
        assert rule["apply_server_side_encryption_by_default"]["sse_algorithm"] == "aws:kms"
        assert "aws_kms_key" in rule["apply_server_side_encryption_by_default"]["kms_master_key_id"]
        assert rule["bucket_key_enabled"] is True

    def test_access_log_bucket_uses_sse_s3_because_log_delivery_requires_it(self, each):
        rule = each.one(S3BucketServerSideEncryptionConfigurationA.TF_RESOURCE_TYPE, "access-logs")[
            "rule"
        ][0]
        assert rule["apply_server_side_encryption_by_default"] == {"sse_algorithm": "AES256"}

    def test_all_four_public_access_blocks_on_every_bucket(self, each):
        blocks = list(each.resources(S3BucketPublicAccessBlock.TF_RESOURCE_TYPE).values())
        assert len(blocks) == 3
        for block in blocks:
            for setting in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ):
                assert block[setting] is True

    def test_owner_enforced_ownership_on_every_bucket(self, each):
        rules = [
            c["rule"] for c in each.resources(S3BucketOwnershipControls.TF_RESOURCE_TYPE).values()
        ]
        assert rules == [{"object_ownership": "BucketOwnerEnforced"}] * 3

    def test_both_bucket_policies_deny_plain_http(self, each):
        for policy in each.resources(S3BucketPolicy.TF_RESOURCE_TYPE).values():
            document_id = policy["policy"].split(".")[2]
            statements = each.data("aws_iam_policy_document")[document_id]["statement"]
            deny = [s for s in statements if s["effect"] == "Deny"]
            assert deny and deny[0]["condition"] == [
                {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
            ]

    def test_uploads_and_reports_move_to_glacier_after_the_profiles_days(self, each):
        days = each.profile.glacier_transition_days
        rules = _rules(each, "batch-lifecycle")
        for rule_id, prefix in (
            ("incoming-to-glacier", "incoming/"),
            ("reports-to-glacier", "reports/"),
        ):
            rule = rules[rule_id]
            assert rule["filter"] == [{"prefix": prefix}]
            assert rule["transition"] == [{"days": days, "storage_class": "GLACIER"}]
            assert rule["noncurrent_version_transition"] == [
                {"noncurrent_days": days, "storage_class": "GLACIER"}
            ]

    def test_replaced_uploads_and_reports_expire_after_their_glacier_minimum(self, each):
        lifecycle = each.one(S3BucketLifecycleConfiguration.TF_RESOURCE_TYPE, "batch-lifecycle")
        days = each.profile.noncurrent_version_expiration_days
        for rule in lifecycle["rule"]:
            if "-to-glacier" not in rule["id"]:
                continue
            assert rule["noncurrent_version_expiration"] == [{"noncurrent_days": days}]
            (transition,) = rule["noncurrent_version_transition"]
            assert days >= transition["noncurrent_days"] + 90
        assert days >= each.profile.log_retention_days

    def test_uploads_and_reports_are_deleted_after_the_profiles_retention(self, each):
        days = each.profile.upload_retention_days
        rules = _rules(each, "batch-lifecycle")
        for rule_id in ("incoming-to-glacier", "reports-to-glacier"):
            assert rules[rule_id]["expiration"] == [{"days": days}]
        # Not before Glacier's minimum storage, nor before the logs that mention them go.
        assert days >= each.profile.glacier_transition_days + 90
        assert days >= each.profile.log_retention_days
        assert {p: PROFILES[p].upload_retention_days for p in PROFILES} == {
            "dev": 120, "staging": 120, "production": 395
        }  # fmt: skip

    def test_incomplete_multipart_uploads_are_aborted_on_both_buckets(self, each):
        for id_part in ("batch-lifecycle", "access-logs-lifecycle"):
            rule = _rules(each, id_part)["abort-incomplete-multipart-uploads"]
            assert rule["filter"] == [{}], "an empty filter covers the whole bucket"
            assert rule["abort_incomplete_multipart_upload"] == [
                {"days_after_initiation": ABORT_INCOMPLETE_UPLOAD_DAYS}
            ]

    def test_access_logs_of_the_batch_bucket_and_the_archive_go_to_the_log_bucket(self, each):
        loggings = each.resources(S3BucketLoggingA.TF_RESOURCE_TYPE).values()
        assert sorted(lg["target_prefix"] for lg in loggings) == [
            f"payments-audit-archive-{each.settings.suffix}/",
            f"payments-batch-{each.settings.suffix}/",
        ]
        for logging in loggings:
            assert "access-logs" in logging["target_bucket"]
            # S3 checks the target bucket's policy when logging is enabled.
            assert any("access-logs_policy_" in dep for dep in logging["depends_on"])

    def test_only_csv_uploads_under_incoming_notify_batch_trigger(self, each):
        notification = each.one(S3BucketNotification.TF_RESOURCE_TYPE)
        assert notification["lambda_function"] == [
            {
                "events": ["s3:ObjectCreated:*"],
                "filter_prefix": "incoming/",
                "filter_suffix": ".csv",
                "lambda_function_arn": notification["lambda_function"][0]["lambda_function_arn"],
            }
        ]
        assert "batch-trigger" in notification["lambda_function"][0]["lambda_function_arn"]

    def test_force_destroy_follows_the_profile(self, each):
        for bucket in each.resources(S3Bucket.TF_RESOURCE_TYPE).values():
            assert bucket["force_destroy"] is each.profile.force_destroy

    def test_production_buckets_survive_destroy_and_dev_buckets_do_not(self, production, dev):
        assert production.profile.force_destroy is False
        assert dev.profile.force_destroy is True


class TestAuditArchive:
    def test_object_lock_is_enabled_at_creation(self, each):
        bucket = each.one(S3Bucket.TF_RESOURCE_TYPE, "audit-archive")
        assert bucket["object_lock_enabled"] is True

    def test_every_object_is_locked_in_the_profiles_mode_for_its_retention(self, each):
        lock = each.one(S3BucketObjectLockConfigurationA.TF_RESOURCE_TYPE, "audit-archive-lock")
        assert lock["rule"]["default_retention"] == {
            "mode": each.profile.audit_archive_lock_mode,
            "days": each.profile.audit_archive_retention_days,
        }
        assert {
            p: (PROFILES[p].audit_archive_lock_mode, PROFILES[p].audit_archive_retention_days)
            for p in PROFILES
        } == {
            "dev": ("GOVERNANCE", 1),
            "staging": ("COMPLIANCE", 30),
            "production": ("COMPLIANCE", 395),
        }

    def test_production_keeps_the_archive_at_least_twelve_months(self, each):
        # PCI DSS 10.5.1.
        if each.profile.name == "production":
            assert each.profile.audit_archive_retention_days >= 365

    def test_objects_expire_once_their_lock_ends(self, each):
        rule = _rules(each, "audit-archive-lifecycle")["expire-after-retention"]
        assert rule["filter"] == [{"prefix": AUDIT_ARCHIVE_PREFIX}]
        assert rule["expiration"] == [{"days": each.profile.audit_archive_retention_days}]

    def test_the_archive_uses_the_cmk(self, each):
        rule = each.one(
            S3BucketServerSideEncryptionConfigurationA.TF_RESOURCE_TYPE, "audit-archive"
        )["rule"][0]
        assert "aws_kms_key" in rule["apply_server_side_encryption_by_default"]["kms_master_key_id"]
