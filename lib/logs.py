"""CloudWatch log groups: every group of the stack is encrypted with the environment's CMK and
kept for the profile's retention, so one helper creates them all. Their names are defined here,
once: the constructs create them and the key policy lets CloudWatch Logs use the key for exactly
these groups."""

from __future__ import annotations

from collections.abc import Sequence

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


def lambda_log_group_name(settings: Settings, function_key: str) -> str:
    return f"/aws/lambda/{settings.name(function_key)}"


def api_access_log_group_name(settings: Settings) -> str:
    return f"/aws/apigateway/{settings.name('api')}"


def api_execution_log_group_name(settings: Settings, api_id: str) -> str:
    """API Gateway names it after the REST API's id and the stage (the suffix)."""
    return f"API-Gateway-Execution-Logs_{api_id}/{settings.suffix}"


def waf_log_group_name(settings: Settings) -> str:
    # WAF only delivers to log groups whose name starts with aws-waf-logs-.
    return f"aws-waf-logs-{settings.name('api')}"


def workflow_log_group_name(settings: Settings, state_machine: str) -> str:
    # The /aws/vendedlogs/ prefix keeps the log-group resource policy Step Functions writes
    # small (AWS recommends it for vended logs).
    return f"/aws/vendedlogs/states/{settings.name(state_machine)}"


def flow_log_group_name(settings: Settings) -> str:
    return f"/aws/vpc/flow-logs/{settings.name('vpc')}"


def environment_log_group_names(
    settings: Settings, *, function_keys: Sequence[str], state_machine: str
) -> list[str]:
    """Every log group of the environment (the execution logs' API id as ``*``)."""
    return [
        *(lambda_log_group_name(settings, key) for key in function_keys),
        api_access_log_group_name(settings),
        api_execution_log_group_name(settings, "*"),
        waf_log_group_name(settings),
        workflow_log_group_name(settings, state_machine),
        *([flow_log_group_name(settings)] if settings.profile.vpc_enabled else []),
    ]
