"""Alarms on the changes that would let data be lost for good: the environment's key disabled or
scheduled for deletion, a table's point-in-time recovery switched off, a table's deletion
protection removed (staging and production).

CloudWatch has no metric for these; CloudTrail records each as a management event, and an
EventBridge rule per kind sends the matching ones to the alarms topic with a sentence and the
runbook's link. EventBridge receives "AWS API Call via CloudTrail" events only while the account
has a trail logging management events (an organization trail counts): README, "Once per
account and region".
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetInputTransformer,
)
from constructs import Construct

from lib.iam import AwsAccount
from lib.settings import Settings

CLOUDTRAIL = "AWS API Call via CloudTrail"
RUNBOOK_SECTION = "key-and-backups"


def rule_name(settings: Settings, guard: str) -> str:
    """``payments-guard-<guard>-<suffix>``; the alarms topic lets these rules publish."""
    return settings.name(f"guard-{guard}")


def rule_arn_pattern(settings: Settings, account: AwsAccount) -> str:
    """The ARNs of this environment's guard rules (``aws:SourceArn`` of their publishes)."""
    return account.arn("events", f"rule/{rule_name(settings, '*')}")


class Guardrails(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        key_arn: str,
        table_names: Sequence[str],
        table_arns: Sequence[str],
        alarms_topic_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        # A table is named in a request by its name or its ARN.
        tables = [*table_names, *table_arns]
        patterns = {
            "key": (
                "the environment's KMS key was disabled or scheduled for deletion: every table, "
                "queue, topic and object it encrypts becomes unreadable",
                {
                    "source": ["aws.kms"],
                    "detail-type": [CLOUDTRAIL],
                    "detail": {
                        "eventSource": ["kms.amazonaws.com"],
                        "eventName": ["DisableKey", "ScheduleKeyDeletion"],
                        "resources": {"ARN": [key_arn]},
                    },
                },
            ),
            "pitr": (
                "point-in-time recovery was switched off on a payments table: it can no "
                "longer be restored",
                {
                    "source": ["aws.dynamodb"],
                    "detail-type": [CLOUDTRAIL],
                    "detail": {
                        "eventSource": ["dynamodb.amazonaws.com"],
                        "eventName": ["UpdateContinuousBackups"],
                        "requestParameters": {
                            "tableName": tables,
                            "pointInTimeRecoverySpecification": {
                                "pointInTimeRecoveryEnabled": [False]
                            },
                        },
                    },
                },
            ),
            "deletion-protection": (
                "deletion protection was removed from a payments table: one call can now delete it",
                {
                    "source": ["aws.dynamodb"],
                    "detail-type": [CLOUDTRAIL],
                    "detail": {
                        "eventSource": ["dynamodb.amazonaws.com"],
                        "eventName": ["UpdateTable"],
                        "requestParameters": {
                            "tableName": tables,
                            "deletionProtectionEnabled": [False],
                        },
                    },
                },
            ),
        }
        self.rules: dict[str, CloudwatchEventRule] = {}
        for guard, (what, pattern) in patterns.items():
            rule = CloudwatchEventRule(
                self,
                f"{guard}-rule",
                name=rule_name(settings, guard),
                description=what[:512],
                event_pattern=json.dumps(pattern),
            )
            self.rules[guard] = rule
            CloudwatchEventTarget(
                self,
                f"{guard}-target",
                rule=rule.name,
                arn=alarms_topic_arn,
                # What the page says: what happened, to what, by whom, and where the runbook is.
                input_transformer=CloudwatchEventTargetInputTransformer(
                    input_paths={
                        "call": "$.detail.eventName",
                        "by": "$.detail.userIdentity.arn",
                        "at": "$.time",
                        "account": "$.account",
                        "region": "$.region",
                    },
                    input_template=json.dumps(
                        f"ALARM {rule_name(settings, guard)}: {what} (<call> by <by> at <at>, "
                        f"account <account>, <region>). Runbook: "
                        f"{settings.runbook_url}#{RUNBOOK_SECTION}"
                    ),
                ),
            )
