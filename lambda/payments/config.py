"""The function's configuration, read once from the environment variables named in ``env.py``.

A missing or malformed variable raises ``ConfigurationError`` naming it, instead of a KeyError
deep inside a request: a misconfigured deployment should say what is wrong in its first log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from payments import env
from payments.contract import DEFAULT_SIGNATURE_TOLERANCE_SECONDS
from payments.errors import ConfigurationError

DEFAULT_MAX_PAYMENT_AMOUNT = Decimal("1000000")
DEFAULT_BATCH_CHUNK_ROWS = 5000
# Upper bound keeps one chunk well inside the 300 s batch-tasks timeout (see docs/RUNTIME.md).
MAX_BATCH_CHUNK_ROWS = 50_000
DEFAULT_STUCK_AFTER_SECONDS = 30 * 60
DEFAULT_WORKFLOW_TIMEOUT_SECONDS = 2 * 60 * 60
DEFAULT_WEBHOOK_TOLERANCE_SECONDS = DEFAULT_SIGNATURE_TOLERANCE_SECONDS
_ARN = re.compile(r"arn:aws[a-zA-Z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:.+", re.ASCII)
_URL = re.compile(r"https?://\S+", re.ASCII)
_KEY_ID = re.compile(r"[A-Za-z0-9]{1,128}", re.ASCII)


@dataclass(frozen=True, kw_only=True)
class Config:
    environment: str
    payments_table: str | None = None
    processing_status_table: str | None = None
    audit_log_table: str | None = None
    processing_queue_url: str | None = None
    payment_events_topic_arn: str | None = None
    batch_bucket: str | None = None
    audit_archive_bucket: str | None = None
    state_machine_arn: str | None = None
    max_payment_amount: Decimal = DEFAULT_MAX_PAYMENT_AMOUNT
    webhook_secret_parameter: str | None = None
    webhook_tolerance_seconds: int = DEFAULT_WEBHOOK_TOLERANCE_SECONDS
    batch_chunk_rows: int = DEFAULT_BATCH_CHUNK_ROWS
    cors_allowed_origin: str | None = None
    default_api_key_id: str | None = None
    stuck_after_seconds: int = DEFAULT_STUCK_AFTER_SECONDS
    workflow_timeout_seconds: int = DEFAULT_WORKFLOW_TIMEOUT_SECONDS
    # None: payer fields are never minimised by age (only ``make erase`` removes them).
    payer_data_days: int | None = None

    def require(self, *names: str) -> Config:
        """Fail fast naming every variable this function needs but was not given."""
        missing = [name for name in names if getattr(self, _FIELD_OF[name]) in (None, "")]
        if missing:
            raise ConfigurationError(
                "missing environment variable(s): " + ", ".join(missing),
                details={"variables": missing},
            )
        return self


_FIELD_OF = {
    env.ENVIRONMENT: "environment",
    env.PAYMENTS_TABLE: "payments_table",
    env.PROCESSING_STATUS_TABLE: "processing_status_table",
    env.AUDIT_LOG_TABLE: "audit_log_table",
    env.PROCESSING_QUEUE_URL: "processing_queue_url",
    env.PAYMENT_EVENTS_TOPIC_ARN: "payment_events_topic_arn",
    env.BATCH_BUCKET: "batch_bucket",
    env.AUDIT_ARCHIVE_BUCKET: "audit_archive_bucket",
    env.STATE_MACHINE_ARN: "state_machine_arn",
    env.MAX_PAYMENT_AMOUNT: "max_payment_amount",
    env.WEBHOOK_SECRET_PARAMETER: "webhook_secret_parameter",
    env.WEBHOOK_TOLERANCE_SECONDS: "webhook_tolerance_seconds",
    env.BATCH_CHUNK_ROWS: "batch_chunk_rows",
    env.CORS_ALLOWED_ORIGIN: "cors_allowed_origin",
    env.DEFAULT_API_KEY_ID: "default_api_key_id",
    env.STUCK_AFTER_SECONDS: "stuck_after_seconds",
    env.WORKFLOW_TIMEOUT_SECONDS: "workflow_timeout_seconds",
    env.PAYER_DATA_DAYS: "payer_data_days",
}


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate every variable that is set; ``Config.require`` checks presence."""
    environ = os.environ if environ is None else environ

    def text(name: str) -> str | None:
        value = environ.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ConfigurationError(f"environment variable {name} is set but empty")
        return value

    def arn(name: str) -> str | None:
        value = text(name)
        if value is not None and not _ARN.fullmatch(value):
            raise ConfigurationError(f"environment variable {name}={value!r} is not an ARN")
        return value

    queue_url = text(env.PROCESSING_QUEUE_URL)
    if queue_url is not None and not _URL.fullmatch(queue_url):
        raise ConfigurationError(
            f"environment variable {env.PROCESSING_QUEUE_URL}={queue_url!r} is not a queue URL"
        )
    return Config(
        environment=text(env.ENVIRONMENT) or "dev",
        payments_table=text(env.PAYMENTS_TABLE),
        processing_status_table=text(env.PROCESSING_STATUS_TABLE),
        audit_log_table=text(env.AUDIT_LOG_TABLE),
        processing_queue_url=queue_url,
        payment_events_topic_arn=arn(env.PAYMENT_EVENTS_TOPIC_ARN),
        batch_bucket=text(env.BATCH_BUCKET),
        audit_archive_bucket=text(env.AUDIT_ARCHIVE_BUCKET),
        state_machine_arn=arn(env.STATE_MACHINE_ARN),
        max_payment_amount=_max_amount(text(env.MAX_PAYMENT_AMOUNT)),
        webhook_secret_parameter=text(env.WEBHOOK_SECRET_PARAMETER),
        webhook_tolerance_seconds=_seconds(
            env.WEBHOOK_TOLERANCE_SECONDS,
            text(env.WEBHOOK_TOLERANCE_SECONDS),
            DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
        ),
        batch_chunk_rows=_chunk_rows(text(env.BATCH_CHUNK_ROWS)),
        cors_allowed_origin=text(env.CORS_ALLOWED_ORIGIN),
        default_api_key_id=_key_id(text(env.DEFAULT_API_KEY_ID)),
        stuck_after_seconds=_seconds(
            env.STUCK_AFTER_SECONDS, text(env.STUCK_AFTER_SECONDS), DEFAULT_STUCK_AFTER_SECONDS
        ),
        workflow_timeout_seconds=_seconds(
            env.WORKFLOW_TIMEOUT_SECONDS,
            text(env.WORKFLOW_TIMEOUT_SECONDS),
            DEFAULT_WORKFLOW_TIMEOUT_SECONDS,
        ),
        payer_data_days=_days(env.PAYER_DATA_DAYS, text(env.PAYER_DATA_DAYS)),
    )


def _key_id(value: str | None) -> str | None:
    if value is not None and not _KEY_ID.fullmatch(value):
        raise ConfigurationError(
            f"environment variable {env.DEFAULT_API_KEY_ID}={value!r} is not an API key id"
        )
    return value


def _days(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 3650:
        raise ConfigurationError(
            f"environment variable {name}={value!r} must be a number of days from 1 to 3650"
        )
    return int(value)


def _seconds(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 7 * 24 * 3600:
        raise ConfigurationError(
            f"environment variable {name}={value!r} must be a number of seconds from 1 to 604800"
        )
    return int(value)


def _max_amount(value: str | None) -> Decimal:
    if value is None:
        return DEFAULT_MAX_PAYMENT_AMOUNT
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise ConfigurationError(
            f"environment variable {env.MAX_PAYMENT_AMOUNT}={value!r} must be a positive decimal"
        )
    return amount


def _chunk_rows(value: str | None) -> int:
    if value is None:
        return DEFAULT_BATCH_CHUNK_ROWS
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_BATCH_CHUNK_ROWS:
        raise ConfigurationError(
            f"environment variable {env.BATCH_CHUNK_ROWS}={value!r} must be an integer "
            f"from 1 to {MAX_BATCH_CHUNK_ROWS}"
        )
    return int(value)
