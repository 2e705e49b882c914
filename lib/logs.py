"""CloudWatch log groups: every group of the stack is encrypted with the environment's CMK and
kept for the profile's retention, so one helper creates them all."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct

from lib.settings import Settings


def encrypted_log_group(
    scope: Construct, id_: str, *, name: str, settings: Settings, kms_key_arn: str
) -> CloudwatchLogGroup:
    """A log group Terraform owns: left to the service, it would be unencrypted and kept
    forever, and Terraform could not delete it with the environment."""
    return CloudwatchLogGroup(
        scope,
        id_,
        name=name,
        retention_in_days=settings.profile.log_retention_days,
        kms_key_id=kms_key_arn,
    )
