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
# queue, CloudWatch alarms publishing to the encrypted alarms topic.
_SERVICE_PRINCIPALS = ("sns.amazonaws.com", "cloudwatch.amazonaws.com")
_USE_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)
# Named actions instead of kms:* so that no policy of the stack has a service-wide wildcard.
# Management only, unconditionally: were the data actions or CreateGrant (a grant can hand out
# Decrypt) here too, they would make the kms:ViaService restriction below meaningless, and a
# function's stolen credentials could decrypt data keys outside SQS, SNS, S3 or DynamoDB.
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
    """One CMK per environment with yearly rotation and an alias naming the environment."""

    def __init__(self, scope: Construct, id_: str, *, settings: Settings, account: AwsAccount):
        super().__init__(scope, id_)
        root = f"arn:{account.partition}:iam::{account.account_id}:root"
        same_account = {"kms:CallerAccount": account.account_id}
        via = [account.service_endpoint(svc) for svc in _VIA_SERVICES]
        # A key policy is a resource policy whose Resource "*" means "this key"; nothing
        # narrower exists. It is therefore a JSON string, not an aws_iam_policy_document:
        # checkov's identity-policy checks would read "*" as "every resource in the account".
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                _allow("AccountAdministersKey", _ADMIN_ACTIONS, {"AWS": root}),
                _allow(
                    "AccountRolesUseKeyThroughServices",
                    (*_USE_ACTIONS, "kms:CreateGrant"),
                    {"AWS": root},
                    {"StringEquals": {**same_account, "kms:ViaService": via}},
                ),
                _allow(
                    "CloudWatchLogsEncryptsThisAccountsLogGroups",
                    _USE_ACTIONS,
                    {"Service": account.service_endpoint("logs")},
                    {
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": account.arn("logs", "log-group:*")
                        }
                    },
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
