"""The batch bucket (CSV uploads and reports) and the bucket that receives its access logs."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionTransition,
    S3BucketLifecycleConfigurationRuleTransition,
)
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_object_lock_configuration import (
    S3BucketObjectLockConfigurationA,
    S3BucketObjectLockConfigurationRuleA,
    S3BucketObjectLockConfigurationRuleDefaultRetentionA,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from constructs import Construct

from lib.iam import AwsAccount, Condition, deny_insecure_transport, policy_document, statement
from lib.settings import Settings

INCOMING_PREFIX = "incoming/"
REPORTS_PREFIX = "reports/"
# payments.archive writes the audit archive's objects under this prefix.
AUDIT_ARCHIVE_PREFIX = "audit/"
CSV_SUFFIX = ".csv"
ABORT_INCOMPLETE_UPLOAD_DAYS = 7
# Access logs are operational data, not the audit trail (that is the audit-log table and
# CloudTrail); a month of old versions is enough to investigate an incident.
ACCESS_LOG_NONCURRENT_DAYS = 30


class _PrivateBucket(Construct):
    """A versioned bucket with every public-access block, owner-enforced ownership, TLS only."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        force_destroy: bool,
        kms_key_arn: str | None,
        object_lock: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = S3Bucket(
            self,
            "bucket",
            bucket=name,
            force_destroy=force_destroy,
            # Only at creation: an existing bucket cannot be given Object Lock by Terraform.
            object_lock_enabled=object_lock or None,
        )
        S3BucketVersioningA(
            self,
            "versioning",
            bucket=self.bucket.id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )
        by_default = (
            S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
            )
            if kms_key_arn
            else S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="AES256"
            )
        )
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=self.bucket.id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=by_default,
                    # One data key per bucket instead of one KMS call per object.
                    bucket_key_enabled=bool(kms_key_arn),
                )
            ],
        )
        self.public_access_block = S3BucketPublicAccessBlock(
            self,
            "public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        S3BucketOwnershipControls(
            self,
            "ownership",
            bucket=self.bucket.id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )

    def attach_policy(self, statements: list) -> S3BucketPolicy:
        tls_only = deny_insecure_transport(
            actions=["s3:*"], resources=[self.bucket.arn, f"{self.bucket.arn}/*"]
        )
        document = policy_document(self, "policy-document", [tls_only, *statements])
        return S3BucketPolicy(
            self,
            "policy",
            bucket=self.bucket.id,
            policy=document.json,
            # S3 rejects a policy while the public-access block is still being applied.
            depends_on=[self.public_access_block],
        )


class Storage(Construct):
    """Batch bucket with lifecycle rules and access logging into a separate log bucket."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        kms_key_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        profile = settings.profile
        # Bucket names are global across all AWS accounts: the account id keeps two accounts'
        # environments with the same suffix apart.
        logs = _PrivateBucket(
            self,
            "access-logs",
            name=f"{settings.name('access-logs')}-{account.account_id}",
            force_destroy=profile.force_destroy,
            # S3 server access logging can only deliver to buckets encrypted with SSE-S3.
            kms_key_arn=None,
        )
        batch = _PrivateBucket(
            self,
            "batch",
            name=f"{settings.name('batch')}-{account.account_id}",
            force_destroy=profile.force_destroy,
            kms_key_arn=kms_key_arn,
        )
        self.bucket = batch.bucket
        self.log_bucket = logs.bucket
        batch.attach_policy([])
        self.audit_archive = self._audit_archive(settings, account, kms_key_arn)
        logged = {"batch": batch.bucket, "audit-archive": self.audit_archive}
        log_bucket_policy = logs.attach_policy(
            [
                statement(
                    sid="S3ServerAccessLogsFromThisEnvironmentsBuckets",
                    actions=["s3:PutObject"],
                    resources=[f"{logs.bucket.arn}/*"],
                    principals={"Service": ["logging.s3.amazonaws.com"]},
                    conditions=[
                        Condition(
                            test="ArnLike",
                            variable="aws:SourceArn",
                            values=[bucket.arn for bucket in logged.values()],
                        ),
                        Condition(
                            test="StringEquals",
                            variable="aws:SourceAccount",
                            values=[account.account_id],
                        ),
                    ],
                )
            ]
        )
        for base, bucket in logged.items():
            S3BucketLoggingA(
                self,
                "access-logging" if base == "batch" else f"{base}-access-logging",
                bucket=bucket.id,
                target_bucket=logs.bucket.id,
                target_prefix=f"{settings.name(base)}/",
                # S3 refuses PutBucketLogging (InvalidTargetBucketForLogging) until the target
                # bucket's policy lets the logging service write.
                depends_on=[log_bucket_policy],
            )
        glacier_days = profile.glacier_transition_days
        S3BucketLifecycleConfiguration(
            self,
            "batch-lifecycle",
            bucket=batch.bucket.id,
            rule=[
                *(
                    S3BucketLifecycleConfigurationRule(
                        id=f"{prefix.rstrip('/')}-to-glacier",
                        status="Enabled",
                        filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=prefix)],
                        # A file in incoming/ older than this was processed long ago; its
                        # report and the payments in DynamoDB are what operators read.
                        transition=[
                            S3BucketLifecycleConfigurationRuleTransition(
                                days=glacier_days, storage_class="GLACIER"
                            )
                        ],
                        noncurrent_version_transition=[
                            S3BucketLifecycleConfigurationRuleNoncurrentVersionTransition(
                                noncurrent_days=glacier_days, storage_class="GLACIER"
                            )
                        ],
                        # Every file holds payers' data: it is deleted after the profile's
                        # retention (a delete marker; the version itself goes as a noncurrent
                        # one, below).
                        expiration=[
                            S3BucketLifecycleConfigurationRuleExpiration(
                                days=profile.upload_retention_days
                            )
                        ],
                        # A replaced upload or report is kept for investigations, then goes:
                        # versioning would otherwise keep every version forever.
                        noncurrent_version_expiration=[
                            S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                                noncurrent_days=profile.noncurrent_version_expiration_days
                            )
                        ],
                    )
                    for prefix in (INCOMING_PREFIX, REPORTS_PREFIX)
                ),
                _abort_incomplete_uploads(),
            ],
        )
        S3BucketLifecycleConfiguration(
            self,
            "access-logs-lifecycle",
            bucket=logs.bucket.id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter()],
                    expiration=[
                        S3BucketLifecycleConfigurationRuleExpiration(
                            days=profile.log_retention_days
                        )
                    ],
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                            noncurrent_days=ACCESS_LOG_NONCURRENT_DAYS
                        )
                    ],
                ),
                _abort_incomplete_uploads(),
            ],
        )

    def _audit_archive(self, settings: Settings, account: AwsAccount, kms_key_arn: str) -> S3Bucket:
        """Every audit entry, copied as it is written (payments.archive), kept by Object Lock."""
        profile = settings.profile
        archive = _PrivateBucket(
            self,
            "audit-archive",
            name=f"{settings.name('audit-archive')}-{account.account_id}",
            # Compliance-mode objects cannot be deleted before their retention ends, whatever
            # this says; in dev (governance mode) a destroy removes them.
            force_destroy=profile.force_destroy,
            kms_key_arn=kms_key_arn,
            object_lock=True,
        )
        S3BucketObjectLockConfigurationA(
            self,
            "audit-archive-lock",
            bucket=archive.bucket.id,
            rule=S3BucketObjectLockConfigurationRuleA(
                default_retention=S3BucketObjectLockConfigurationRuleDefaultRetentionA(
                    mode=profile.audit_archive_lock_mode,
                    days=profile.audit_archive_retention_days,
                )
            ),
        )
        archive.attach_policy([])
        S3BucketLifecycleConfiguration(
            self,
            "audit-archive-lifecycle",
            bucket=archive.bucket.id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="expire-after-retention",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=AUDIT_ARCHIVE_PREFIX)],
                    # The lock ends after the retention; the object then goes (a delete
                    # marker, and its version a day later).
                    expiration=[
                        S3BucketLifecycleConfigurationRuleExpiration(
                            days=profile.audit_archive_retention_days
                        )
                    ],
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                            noncurrent_days=1
                        )
                    ],
                ),
                _abort_incomplete_uploads(),
            ],
        )
        return archive.bucket


def _abort_incomplete_uploads() -> S3BucketLifecycleConfigurationRule:
    return S3BucketLifecycleConfigurationRule(
        id="abort-incomplete-multipart-uploads",
        status="Enabled",
        # An empty filter is the whole bucket.
        filter=[S3BucketLifecycleConfigurationRuleFilter()],
        abort_incomplete_multipart_upload=[
            S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                days_after_initiation=ABORT_INCOMPLETE_UPLOAD_DAYS
            )
        ],
    )
