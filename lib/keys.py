"""The environment's customer-managed KMS key, shared by S3, DynamoDB, SQS, SNS, SSM and Logs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from lib.iam import AwsAccount
from lib.settings import Settings

# Services that use the key on behalf of this account's roles (kms:ViaService).
_VIA_SERVICES = ("dynamodb", "sqs", "sns", "s3", "ssm", "states", "lambda", "scheduler")
# Services that encrypt with the key as themselves: SNS delivering into the encrypted subscriber
# queue, CloudWatch alarms and the guard rules (EventBridge) publishing to the encrypted alarms
# topic.
_SERVICE_PRINCIPALS = ("sns.amazonaws.com", "cloudwatch.amazonaws.com", "events.amazonaws.com")
_USE_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)
# What the account itself keeps: enough to read the key and replace its policy, so the key can
# never become unmanageable (AWS's lockout safety check asks for PutKeyPolicy), and nothing
# else: administration is the admin role's, data use goes through the services.
_ACCOUNT_RECOVERY_ACTIONS = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy")
# Named actions instead of kms:* so that no policy of the stack has a service-wide wildcard.
# Management only, for the key administrator: were the data actions or CreateGrant (a grant can
# hand out Decrypt) here too, they would make the kms:ViaService restriction below meaningless.
_ADMIN_ACTIONS = (
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)


class Keys(Construct):
    """One CMK per environment with yearly rotation and an alias naming the environment.

    Separation of duties: the account root can only read the key and replace its policy; the key
    administrator (``KMS_ADMIN_ROLE_ARN``, else the role that deploys) manages it but cannot
    use it; the environment's roles use it only through the platform's services; CloudWatch Logs
    only for this environment's log groups; grants only for AWS resources.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        log_group_names: Sequence[str],
    ):
        super().__init__(scope, id_)
        root = f"arn:{account.partition}:iam::{account.account_id}:root"
        administrator = settings.key_admin_role_arn or account.deployer_arn
        same_account = {"kms:CallerAccount": account.account_id}
        via = [account.service_endpoint(svc) for svc in _VIA_SERVICES]
        log_groups = [account.arn("logs", f"log-group:{name}") for name in log_group_names]
        # A key policy is a resource policy whose Resource "*" means "this key"; nothing
        # narrower exists. It is therefore a JSON string, not an aws_iam_policy_document:
        # checkov's identity-policy checks would read "*" as "every resource in the account".
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                _allow("AccountCanAlwaysRecoverTheKey", _ACCOUNT_RECOVERY_ACTIONS, {"AWS": root}),
                _allow("KeyAdministrator", _ADMIN_ACTIONS, {"AWS": administrator}),
                _allow(
                    "AccountRolesUseKeyThroughServices",
                    _USE_ACTIONS,
                    {"AWS": root},
                    {"StringEquals": {**same_account, "kms:ViaService": via}},
                ),
                # DynamoDB, SQS, Lambda and Step Functions create grants for the resources they
                # encrypt; a grant for anything else could hand Decrypt to anyone.
                _allow(
                    "GrantsOnlyForAwsResources",
                    ("kms:CreateGrant",),
                    {"AWS": root},
                    {
                        "StringEquals": {**same_account, "kms:ViaService": via},
                        "Bool": {"kms:GrantIsForAWSResource": "true"},
                    },
                ),
                _allow(
                    "CloudWatchLogsEncryptsThisEnvironmentsLogGroups",
                    _USE_ACTIONS,
                    {"Service": account.service_endpoint("logs")},
                    # ArnLike: the execution logs' group name holds the REST API's id as "*".
                    {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
                ),
                _allow(
                    "ServicesPublishIntoEncryptedTopicsAndQueues",
                    ("kms:Decrypt", "kms:GenerateDataKey"),
                    {"Service": list(_SERVICE_PRINCIPALS)},
                    {"StringEquals": {"aws:SourceAccount": account.account_id}},
                ),
            ],
        }
        self.key = KmsKey(
            self,
            "key",
            description=f"Payments platform data key ({settings.suffix})",
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=30 if settings.profile.deletion_protection else 7,
            policy=json.dumps(policy, separators=(",", ":")),
        )
        KmsAlias(self, "alias", name=f"alias/{settings.name('')}", target_key_id=self.key.key_id)

    @property
    def arn(self) -> str:
        return self.key.arn


def _allow(
    sid: str,
    actions: Sequence[str],
    principal: Mapping[str, Any],
    condition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": dict(principal),
        "Action": list(actions),
        "Resource": "*",
        **({"Condition": dict(condition)} if condition else {}),
    }
