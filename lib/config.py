"""SSM parameters that publish the environment's endpoints and names, and the webhook secret."""

from __future__ import annotations

from collections.abc import Mapping

from cdktf import Fn, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from lib.iam import AwsAccount
from lib.settings import Settings

WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 - the parameter key, not a secret


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
