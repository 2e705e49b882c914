"""The deployment settings: environment profiles and the environment-variable contract.

Everything that differs between dev, staging and production is a field of ``Profile`` and is set
in ``PROFILES`` below, nowhere else. ``Settings.from_env`` reads the process environment once and
either returns a frozen ``Settings`` or raises ``ConfigError`` with one readable message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

SERVICE = "payments"
# CloudWatch namespace of the embedded metrics the functions emit (Powertools Metrics).
METRICS_NAMESPACE = "Payments"
DEFAULT_SUFFIX = "dev"
DEFAULT_REGION = "us-east-1"

# The suffix ends up in S3 bucket names (lower case, digits, hyphens; 63 characters in all) and
# Lambda function names (64 characters). The longest names this stack builds are about 34
# characters plus the suffix, so 20 characters keeps every name valid.
SUFFIX_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """A deployment setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class ApiQuota:
    rate_limit: int
    burst_limit: int
    daily_quota: int


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: str
    api: ApiQuota
    # PAY_PER_REQUEST everywhere: payment traffic is bursty (batch uploads) and on-demand tables
    # absorb a 1M-row file without throttling or autoscaling lag; see README "Environment profiles".
    billing_mode: str
    glacier_transition_days: int
    dlq_retention_days: int
    log_retention_days: int
    alarms_enabled: bool
    deletion_protection: bool
    force_destroy: bool
    vpc_enabled: bool
    max_payment_amount: Decimal = Decimal("1000000")
    # Reserved concurrency of the payment processor protects DynamoDB and downstream consumers.
    processor_reserved_concurrency: int = -1
    api_p99_latency_ms: int = 2000
    # The sweeper runs every ``sweep_rate_minutes`` and re-queues payments that have not changed
    # for ``stuck_after_minutes``: longer than a healthy queue ever holds one (a 1M-row file
    # drains in well under that), so it only finds work a fault left behind.
    sweep_rate_minutes: int = 5
    stuck_after_minutes: int = 30


PROFILES: Mapping[str, Profile] = {
    "dev": Profile(
        name="dev",
        api=ApiQuota(rate_limit=100, burst_limit=200, daily_quota=10_000),
        billing_mode="PAY_PER_REQUEST",
        glacier_transition_days=30,
        dlq_retention_days=3,
        log_retention_days=7,
        alarms_enabled=False,
        deletion_protection=False,
        force_destroy=True,
        vpc_enabled=False,
    ),
    "staging": Profile(
        name="staging",
        api=ApiQuota(rate_limit=1_000, burst_limit=2_000, daily_quota=100_000),
        billing_mode="PAY_PER_REQUEST",
        glacier_transition_days=30,
        dlq_retention_days=7,
        log_retention_days=30,
        alarms_enabled=True,
        deletion_protection=False,
        force_destroy=True,
        vpc_enabled=False,
        processor_reserved_concurrency=20,
    ),
    "production": Profile(
        name="production",
        api=ApiQuota(rate_limit=10_000, burst_limit=5_000, daily_quota=1_000_000),
        billing_mode="PAY_PER_REQUEST",
        glacier_transition_days=90,
        dlq_retention_days=14,
        # PCI DSS 10.5.1: keep audit trail history for at least twelve months.
        log_retention_days=365,
        alarms_enabled=True,
        deletion_protection=True,
        force_destroy=False,
        vpc_enabled=True,
        processor_reserved_concurrency=50,
        api_p99_latency_ms=1000,
        sweep_rate_minutes=2,
        stuck_after_minutes=15,
    ),
}


@dataclass(frozen=True, kw_only=True)
class StateBackend:
    bucket: str
    region: str
    key: str


@dataclass(frozen=True, kw_only=True)
class Settings:
    suffix: str
    profile: Profile
    region: str
    state: StateBackend | None
    # Set only for the local cloud (AWS_ENDPOINT_URL): the provider then talks path-style S3 and
    # skips the checks that need a real AWS account. Production synth never sets it.
    endpoint_url: str | None = None
    owner: str = "payments-platform"
    cost_center: str = "payments"
    data_classification: str = "confidential"
    cors_origin: str = "https://payments.example.com"

    @property
    def environment(self) -> str:
        return self.profile.name

    def name(self, base: str) -> str:
        """The resource name for ``base`` in this environment: ``payments-<base>-<suffix>``."""
        return f"{SERVICE}-{base}-{self.suffix}" if base else f"{SERVICE}-{self.suffix}"

    def table_name(self, base: str) -> str:
        """The table named ``base``; the main table is ``payments-<suffix>``, not doubled."""
        return self.name("" if base == SERVICE else base)

    def parameter_name(self, key: str) -> str:
        """The SSM parameter publishing ``key``: ``/payments/<suffix>/<key>``."""
        return f"/{SERVICE}/{self.suffix}/{key}"

    def default_tags(self) -> dict[str, str]:
        return {
            "Environment": self.environment,
            "Service": SERVICE,
            "Owner": self.owner,
            "CostCenter": self.cost_center,
            "DataClassification": self.data_classification,
            "ManagedBy": "cdktf",
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        suffix = env.get("ENVIRONMENT_SUFFIX", "").strip() or DEFAULT_SUFFIX
        if not SUFFIX_PATTERN.match(suffix):
            raise ConfigError(
                f"ENVIRONMENT_SUFFIX={suffix!r} is not allowed: use 1-20 lower-case letters, "
                "digits or hyphens, starting and ending with a letter or digit "
                "(it becomes part of S3 bucket and Lambda function names)"
            )
        profile_name = env.get("ENVIRONMENT", "").strip() or (
            suffix if suffix in PROFILES else DEFAULT_SUFFIX
        )
        if profile_name not in PROFILES:
            raise ConfigError(
                f"ENVIRONMENT={profile_name!r} is not a known profile: "
                f"use one of {', '.join(PROFILES)}"
            )
        region = env.get("AWS_REGION", "").strip()
        if region and not REGION_PATTERN.match(region):
            raise ConfigError(f"AWS_REGION={region!r} is not an AWS region name such as us-east-1")
        state = _state_backend(env, suffix=suffix, region=region)
        endpoint = env.get("AWS_ENDPOINT_URL", "").strip() or None
        if endpoint and not re.match(r"^https?://[^\s/]+(/.*)?$", endpoint):
            raise ConfigError(f"AWS_ENDPOINT_URL={endpoint!r} is not an http(s) URL")
        origin = env.get("CORS_ALLOWED_ORIGIN", "").strip()
        extra = {"cors_origin": origin} if origin else {}
        if origin and not re.match(r"^https?://[^\s/]+$", origin):
            raise ConfigError(
                f"CORS_ALLOWED_ORIGIN={origin!r} must be an origin such as https://app.example.com"
            )
        return cls(
            suffix=suffix,
            profile=PROFILES[profile_name],
            region=region or DEFAULT_REGION,
            state=state,
            endpoint_url=endpoint,
            **extra,
        )


def _state_backend(env: Mapping[str, str], *, suffix: str, region: str) -> StateBackend | None:
    bucket = env.get("TERRAFORM_STATE_BUCKET", "").strip()
    state_region = env.get("TERRAFORM_STATE_BUCKET_REGION", "").strip()
    if not bucket:
        if state_region:
            raise ConfigError(
                "TERRAFORM_STATE_BUCKET_REGION is set but TERRAFORM_STATE_BUCKET is not: "
                "set both, or neither for a local state file"
            )
        return None
    if not BUCKET_PATTERN.match(bucket):
        raise ConfigError(
            f"TERRAFORM_STATE_BUCKET={bucket!r} is not a valid S3 bucket name "
            "(up to 63 lower-case letters, digits, dots or hyphens)"
        )
    state_region = state_region or region
    if not state_region:
        raise ConfigError(
            "TERRAFORM_STATE_BUCKET is set but neither TERRAFORM_STATE_BUCKET_REGION nor "
            "AWS_REGION is: set TERRAFORM_STATE_BUCKET_REGION to the bucket's region"
        )
    if not REGION_PATTERN.match(state_region):
        raise ConfigError(
            f"TERRAFORM_STATE_BUCKET_REGION={state_region!r} is not an AWS region name "
            "such as us-east-1"
        )
    return StateBackend(
        bucket=bucket, region=state_region, key=f"{SERVICE}/{suffix}/terraform.tfstate"
    )
