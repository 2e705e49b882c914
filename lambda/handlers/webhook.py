"""The fraud webhook's signature: ``X-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``.

The provider signs ``"<t>.<raw body>"`` with HMAC-SHA256. The time is part of what is signed, so
a captured request cannot be replayed once ``t`` is older than the tolerance (5 minutes unless
``WEBHOOK_TOLERANCE_SECONDS`` says otherwise). A ``t`` ahead of the server's clock is accepted
only by the clock skew two honest clocks may have (``contract.SIGNATURE_MAX_CLOCK_SKEW_SECONDS``,
at most the tolerance): a ``t`` dated further ahead would keep a captured request valid for that
much longer than the tolerance.

Rotation: the SSM SecureString holds ``<current>`` or ``<current>,<previous>``; a signature by
either is valid, and a provider may send one ``v1`` per secret while it switches. The value is
cached for ``SECRET_MAX_AGE_SECONDS``, so a rotated value reaches every warm container within
that time (the README's rotation steps wait for it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from payments import aws, contract, env
from payments.errors import ConfigurationError, UnauthorizedError

from handlers.common import on_reset, settings

SECRET_MAX_AGE_SECONDS = 300
SECRET_SEPARATOR = ","  # noqa: S105 - a separator, not a secret
MAX_SECRETS = 2
# Enough for any unix time in seconds (and short enough that int() never meets a huge number).
_MAX_TIMESTAMP_DIGITS = 12

_provider: dict[str, Any] = {}


def webhook_secrets() -> list[bytes]:
    """The valid secrets, current first; the parameter is named by WEBHOOK_SECRET_PARAMETER."""
    cfg = settings().require(env.WEBHOOK_SECRET_PARAMETER)
    if "ssm" not in _provider:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        _provider["ssm"] = SSMProvider(boto3_client=aws.client("ssm"))
    value = _provider["ssm"].get(
        cfg.webhook_secret_parameter, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS
    )
    secrets = [s.strip().encode() for s in value.split(SECRET_SEPARATOR)]
    if not 1 <= len(secrets) <= MAX_SECRETS or not all(secrets):
        # The message names the parameter, never its value; the client sees a plain 500.
        raise ConfigurationError(
            f"{cfg.webhook_secret_parameter} must hold one secret or two separated by "
            f"{SECRET_SEPARATOR!r} (current{SECRET_SEPARATOR}previous)"
        )
    return secrets


@on_reset
def _forget() -> None:
    _provider.clear()


def signature(secret: bytes, timestamp: bytes, body: bytes) -> bytes:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>``, as ASCII bytes."""
    return hmac.new(secret, timestamp + b"." + body, hashlib.sha256).hexdigest().encode()


def verify(header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Return if ``header`` carries a valid, fresh signature of ``body``; else raise a 401.

    Compared as bytes: ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters, and a
    header is whatever the sender typed. Every provided signature is compared with every secret's,
    without stopping at the first match, so the time taken says nothing about which one matched.
    """
    if not header:
        raise _refused(f"missing {contract.SIGNATURE_HEADER} header")
    try:
        raw = header.encode("ascii")
    except UnicodeEncodeError:
        raise _refused("the header must be ASCII") from None
    timestamps: list[bytes] = []
    provided: list[bytes] = []
    for part in raw.split(b","):
        key, sep, value = part.strip().partition(b"=")
        key = key.strip().lower()
        if not sep:
            continue
        if key == b"t":
            timestamps.append(value.strip())
        elif key == contract.SIGNATURE_SCHEME.encode():
            provided.append(value.strip().lower())
    if len(timestamps) != 1 or not provided:
        raise _refused("expected t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>")
    timestamp = timestamps[0]
    if not (timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
        raise _refused("t must be a unix time in seconds")
    tolerance = settings().webhook_tolerance_seconds
    skew = min(contract.SIGNATURE_MAX_CLOCK_SKEW_SECONDS, tolerance)
    ahead = int(timestamp) - (time.time() if now is None else now)
    if ahead > skew:
        raise _refused(f"the signature's time is more than {skew} seconds ahead of the server's")
    if -ahead > tolerance:
        raise _refused(f"the signature is more than {tolerance} seconds old")
    matched = False
    for secret in webhook_secrets():
        expected = signature(secret, timestamp, body)
        for candidate in provided:
            matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise _refused("no signature matches")


def _refused(reason: str) -> UnauthorizedError:
    return UnauthorizedError(
        f"invalid {contract.SIGNATURE_HEADER}: {reason}",
        details={"header": contract.SIGNATURE_HEADER},
    )
