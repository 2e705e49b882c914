"""The fraud webhook's signature: ``X-Signature: sha256=<hex HMAC-SHA256 of the body>``.

The HMAC secret is an SSM SecureString, fetched once per container.
"""

from __future__ import annotations

import hashlib
import hmac

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


def signature_is_valid(header: str | None, body: bytes) -> bool:
    """Whether ``header`` is ``sha256=`` + the hex HMAC-SHA256 of ``body`` (hex in any case).

    Compared as bytes: ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters, and a
    header is whatever the sender typed. Anything malformed is simply not valid.
    """
    if not header:
        return False
    try:
        provided = header.encode("ascii").strip().lower()
    except UnicodeEncodeError:
        return False
    expected = b"sha256=" + hmac.new(webhook_secret(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(provided, expected)
