"""SSM parameters that publish the environment's endpoints and names, and the webhook secret."""

from __future__ import annotations

from collections.abc import Mapping

from cdktf import Fn, Precondition, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_ssm_parameters_by_path import DataAwsSsmParametersByPath
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from lib.iam import AwsAccount
from lib.settings import Settings

WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 - the parameter key, not a secret
# Where the environment records what it is: ``/payments/<suffix>/environment/profile``.
IDENTITY = "environment"
PROFILE_RECORD = f"{IDENTITY}/profile"


def profile_record_name(settings: Settings) -> str:
    return settings.parameter_name(PROFILE_RECORD)


def webhook_secret_parameter_name(settings: Settings) -> str:
    return settings.parameter_name(WEBHOOK_SECRET)


def webhook_secret_parameter_arn(settings: Settings, account: AwsAccount) -> str:
    # Parameter names start with "/", so the ARN reads ...:parameter/payments/<suffix>/...
    return account.arn("ssm", f"parameter{webhook_secret_parameter_name(settings)}")


class Config(Construct):
    """``/payments/<suffix>/<key>`` parameters, one per published value."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        kms_key_arn: str,
        published: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id_)
        for key, value in published.items():
            # Names and URLs are not secrets, but the platform's data classification is
            # confidential: every parameter is encrypted with the environment's key.
            SsmParameter(
                self,
                key,
                name=settings.parameter_name(key),
                type="SecureString",
                key_id=kms_key_arn,
                value=value,
                description=f"{key} of the payments platform ({settings.suffix})",
            )
        self._record_profile(settings)
        # Operators rotate the secret with `aws ssm put-parameter --overwrite`; Terraform only
        # creates it. The first value is a random UUID (only the aws provider is available, so no
        # random provider), and ignore_changes keeps Terraform from resetting a rotated value.
        SsmParameter(
            self,
            WEBHOOK_SECRET,
            name=webhook_secret_parameter_name(settings),
            type="SecureString",
            key_id=kms_key_arn,
            value=Fn.uuid(),
            description="HMAC secret of the fraud webhook; rotate with put-parameter --overwrite",
            lifecycle=TerraformResourceLifecycle(ignore_changes=["value"]),
        )

    def _record_profile(self, settings: Settings) -> None:
        """Record the profile with the environment and refuse, at plan time, an apply with
        another one (unless ``ALLOW_PROFILE_CHANGE`` names it): a production stack re-applied
        as dev would lose its deletion protection, VPC and alarms, and CloudWatch would delete
        its logs older than 7 days for good.

        The record is read by path, which answers an empty list before the first apply (an
        environment deployed before profiles were recorded gets its record on the next apply).
        """
        recorded = DataAwsSsmParametersByPath(
            self, "recorded", path=settings.parameter_name(IDENTITY), with_decryption=False
        )
        profile = settings.profile.name
        checks = []
        if not settings.profile_change_allowed:
            checks.append(
                Precondition(
                    condition=f'${{alltrue([for v in {recorded.fqn}.values : v == "{profile}"])}}',
                    error_message=(
                        f"ENVIRONMENT={profile} is not the profile environment "
                        f"{settings.suffix!r} was deployed with (SSM parameter "
                        f"{profile_record_name(settings)}): apply with that profile, or set "
                        f"ALLOW_PROFILE_CHANGE={profile} to change it on purpose."
                    ),
                )
            )
        # Not a secret, and read by Terraform at plan time: a plain String needs no key access
        # from the deploying role.
        SsmParameter(
            self,
            "profile",
            name=profile_record_name(settings),
            type="String",
            value=profile,
            description=f"the profile of payments environment {settings.suffix} (do not edit)",
            lifecycle=TerraformResourceLifecycle(precondition=checks) if checks else None,
        )
