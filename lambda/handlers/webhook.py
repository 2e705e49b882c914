"""The fraud webhook's HMAC secret: an SSM SecureString, fetched once per container."""

from __future__ import annotations

from payments import aws, env

from handlers.common import on_reset, settings

_secret: dict[str, bytes] = {}


def webhook_secret() -> bytes:
    """The secret's bytes; the parameter is named by WEBHOOK_SECRET_PARAMETER."""
    if "value" not in _secret:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        cfg = settings().require(env.WEBHOOK_SECRET_PARAMETER)
        provider = SSMProvider(boto3_client=aws.client("ssm"))
        _secret["value"] = provider.get(cfg.webhook_secret_parameter, decrypt=True).encode()
    return _secret["value"]


@on_reset
def _forget() -> None:
    _secret.clear()
