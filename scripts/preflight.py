"""``make preflight``: check the target account and region before an apply, so a deploy fails
before it starts instead of halfway.

    make preflight                      # the environment the deploy variables describe
    ENVIRONMENT=production ENVIRONMENT_SUFFIX=prod ... make preflight

Reads the same variables as ``cdktf deploy`` (README, "Deploying to AWS") and checks, with the
caller's credentials, read-only:

- the settings themselves (synth's own checks);
- Lambda: the account's concurrency quota leaves room for the profile's reservations (a new
  account's quota can be as low as 10) and is not below what synth assumed;
- API Gateway: the account's CloudWatch logging role is set and exists (the account stack);
- the Terraform state bucket exists, is versioned and encrypted (production must have one);
- the KMS key's administrator role (KMS_ADMIN_ROLE_ARN) exists;
- CloudTrail (profiles with alarms): a trail logs this region's management events, which the
  guard alarms on the key, PITR and deletion protection need.

One line per check, ``ok`` or ``PROBLEM`` with what to do; exit code 1 when any check found a
problem. With the local cloud running and no AWS target set (``AWS_ENDPOINT_URL``,
``AWS_PROFILE``), it checks the local cloud's environment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402
from deployment import operator_target  # noqa: E402

from lib.settings import LAMBDA_UNRESERVED_MINIMUM, Settings  # noqa: E402


@dataclass(frozen=True)
class Finding:
    check: str
    problem: str | None
    detail: str = ""

    def line(self) -> str:
        if self.problem:
            return f"PROBLEM  {self.check}: {self.problem}"
        return f"ok       {self.check}" + (f": {self.detail}" if self.detail else "")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def lambda_concurrency(settings: Settings, client: Callable[[str], Any]) -> Finding:
    check = "Lambda concurrency"
    awslambda = client("lambda")
    limits = awslambda.get_account_settings()["AccountLimit"]
    quota, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    wanted = settings.profile.reserved_concurrency()
    held = 0
    for key in wanted:
        try:
            answer = awslambda.get_function_concurrency(FunctionName=settings.name(key))
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            continue
        held += int(answer.get("ReservedConcurrentExecutions") or 0)
    more = sum(wanted.values()) - held
    if unreserved - more < LAMBDA_UNRESERVED_MINIMUM:
        return Finding(
            check,
            f"the {settings.profile.name} profile reserves {sum(wanted.values()):,} concurrent "
            f"executions ({more:,} more than this environment holds), but the account has "
            f"{unreserved:,} unreserved of its {quota:,} and Lambda keeps "
            f"{LAMBDA_UNRESERVED_MINIMUM} unreserved: ask for a higher 'Concurrent executions' "
            "quota (Service Quotas) before deploying",
        )
    if quota < settings.quotas.lambda_concurrency:
        return Finding(
            check,
            f"the account's quota is {quota:,}, not the {settings.quotas.lambda_concurrency:,} "
            f"synth assumed: set LAMBDA_ACCOUNT_CONCURRENCY={quota}",
        )
    return Finding(check, None, f"{sum(wanted.values()):,} reserved of {quota:,}")


def api_gateway_logging_role(settings: Settings, client: Callable[[str], Any]) -> Finding:
    check = "API Gateway logging role"
    role = client("apigateway").get_account().get("cloudwatchRoleArn")
    if not role:
        return Finding(
            check,
            "the account has no CloudWatch logging role for API Gateway in this region, so the "
            "stage cannot be created: deploy the account stack first "
            "(PAYMENTS_STACK=account npx cdktf deploy)",
        )
    if not _role_exists(client, role):
        return Finding(check, f"the account's logging role {role} does not exist: redeploy the "
                       "account stack (PAYMENTS_STACK=account npx cdktf deploy)")  # fmt: skip
    return Finding(check, None, role)


def state_bucket(settings: Settings, client: Callable[[str], Any]) -> Finding:
    check = "Terraform state bucket"
    if settings.state is None:
        if settings.profile.name == "production":
            return Finding(check, "production keeps its state in S3: set TERRAFORM_STATE_BUCKET "
                           "and TERRAFORM_STATE_BUCKET_REGION")  # fmt: skip
        return Finding(check, None, "a local state file (no TERRAFORM_STATE_BUCKET)")
    bucket = settings.state.bucket
    s3 = client("s3", settings.state.region)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return Finding(check, f"s3://{bucket} does not exist or cannot be read by this caller")
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        return Finding(check, f"s3://{bucket} is not versioned: a bad write of the state could "
                       "not be undone (aws s3api put-bucket-versioning --bucket "
                       f"{bucket} --versioning-configuration Status=Enabled)")  # fmt: skip
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    except ClientError as exc:
        if _error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = {"Rules": []}
    if not rules.get("Rules"):
        return Finding(check, f"s3://{bucket} has no default encryption: the state holds the "
                       "webhook secret's ARN and every resource's settings (aws s3api "
                       "put-bucket-encryption)")  # fmt: skip
    return Finding(check, None, f"s3://{bucket} versioned and encrypted")


def key_administrator(settings: Settings, client: Callable[[str], Any]) -> Finding:
    check = "KMS key administrator"
    role = settings.key_admin_role_arn
    if role is None:
        return Finding(check, None, "the deploying role (dev only)")
    if not _role_exists(client, role):
        return Finding(check, f"KMS_ADMIN_ROLE_ARN={role} does not exist in this account: KMS "
                       "refuses a key policy naming it")  # fmt: skip
    return Finding(check, None, role)


def management_events_trail(settings: Settings, client: Callable[[str], Any]) -> Finding:
    check = "CloudTrail management events"
    if not settings.profile.alarms_enabled:
        return Finding(
            check, None, f"not needed (the {settings.profile.name} profile has no alarms)"
        )
    cloudtrail = client("cloudtrail")
    for trail in cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", []):
        arn = trail["TrailARN"]
        if not cloudtrail.get_trail_status(Name=arn).get("IsLogging"):
            continue
        selectors = cloudtrail.get_event_selectors(TrailName=arn)
        basic = selectors.get("EventSelectors") or []
        advanced = selectors.get("AdvancedEventSelectors") or []
        if any(s.get("IncludeManagementEvents", True) for s in basic) or any(
            f.get("Field") == "eventCategory" and "Management" in f.get("Equals", [])
            for s in advanced
            for f in s.get("FieldSelectors", [])
        ):
            return Finding(check, None, arn)
    return Finding(
        check,
        "no trail logs this region's management events: the alarms on the key being disabled "
        "and on PITR or deletion protection being switched off would never fire (create a "
        "multi-region trail, or use the organization's)",
    )


CHECKS = (
    lambda_concurrency,
    api_gateway_logging_role,
    state_bucket,
    key_administrator,
    management_events_trail,
)


def _role_exists(client: Callable[[str], Any], arn: str) -> bool:
    try:
        client("iam").get_role(RoleName=arn.rsplit("/", 1)[1])
    except ClientError as exc:
        if _error_code(exc) == "NoSuchEntity":
            return False
        raise
    return True


def run(settings: Settings, client: Callable[..., Any]) -> Iterator[Finding]:
    for check in CHECKS:
        name = check.__name__.replace("_", " ")
        try:
            yield check(settings, client)
        except (ClientError, BotoCoreError) as exc:
            # One line: a service's error can carry a whole HTML page.
            yield Finding(name, f"could not be checked ({str(exc).splitlines()[0]})")


def main(argv: list[str] | None = None) -> int:
    del argv
    target = operator_target("PROBLEM  settings")
    if target is None:
        return 1
    settings, client, where = target.settings, target.client, target.where
    account = client("sts").get_caller_identity()["Account"]
    print(
        f"preflight of environment {settings.suffix!r} ({settings.profile.name} profile) in "
        f"account {account}, {settings.region}, on {where}"
    )
    findings = list(run(settings, client))
    for finding in findings:
        print(finding.line())
    problems = [f for f in findings if f.problem]
    print(f"{len(problems)} problem(s)" if problems else "ready to deploy")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
