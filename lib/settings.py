"""The deployment settings: environment profiles and the environment-variable contract.

Everything that differs between dev, staging and production is a field of ``Profile`` and is set
in ``PROFILES`` below, nowhere else. ``Settings.from_env`` reads the process environment once and
either returns a frozen ``Settings`` or raises ``ConfigError`` with one readable message.
"""

from __future__ import annotations

import math
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
DEFAULT_RUNBOOK_URL = "docs/RUNBOOK.md"
# ALARM_SUBSCRIPTIONS entries: email:<address>, https://<endpoint>, sqs:<queue ARN>.
ALARM_EMAIL_PATTERN = re.compile(r"^[^@\s,]+@[^@\s,]+\.[a-z]{2,}$", re.IGNORECASE)
ALARM_QUEUE_PATTERN = re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[\w-]{1,80}$")

# The suffix ends up in S3 bucket names (lower case, digits, hyphens; 63 characters in all) and
# Lambda function names (64 characters). The longest names this stack builds are about 34
# characters plus the suffix, so 20 characters keeps every name valid.
SUFFIX_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$")
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
DOMAIN_PATTERN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$")


# PAYMENTS_STACK: which stack the app holds. ``environment`` (the default) is the payments
# platform of one ENVIRONMENT_SUFFIX; ``account`` is what exists once per account and region
# (lib/account.py), deployed before the first environment.
STACKS = ("environment", "account")

# S3 Glacier Flexible Retrieval bills an object for at least 90 days.
GLACIER_MINIMUM_DAYS = 90

# VPC mode spreads the functions over three Availability Zones.
ZONE_COUNT = 3

# Documented default quotas (Service Quotas; API Gateway and Lambda developer guides). API
# Gateway's account-level throttle is per region and shared by every stage of every API in it;
# regions opened since 2020 start lower. Lambda keeps 100 concurrent executions unreserved.
DEFAULT_API_ACCOUNT_RATE = 10_000
DEFAULT_API_ACCOUNT_BURST = 5_000
LOW_QUOTA_REGIONS = frozenset(
    {"af-south-1", "eu-south-1", "ap-southeast-3", "me-central-1", "eu-south-2", "eu-central-2"}
)
LOW_QUOTA_API_ACCOUNT_RATE = 2_500
LOW_QUOTA_API_ACCOUNT_BURST = 1_250
DEFAULT_LAMBDA_ACCOUNT_CONCURRENCY = 1_000
LAMBDA_UNRESERVED_MINIMUM = 100
# One stage may use at most this share of the account's API throttle, so that the other stages
# in the same account and region (staging, PR environments) can never throttle it, and it them.
API_STAGE_SHARE_OF_ACCOUNT = 0.5
# Little's law sizing of the API function's reservation: requests/s x seconds per request. The
# handler answers in tens of milliseconds (one transaction and one SendMessage).
API_SECONDS_PER_REQUEST = 0.05
# Batch write rate, for the tables' warm throughput: one chunk stores ~2,000 rows/s (make bench:
# a 5,000-row chunk takes 2.1-3.2 s on batch-tasks), each row one transactional write of a payment
# and one of its audit entry (2 write units each for an item under 1 KB) and one write into each
# GSI of the payments table that projects it (1 unit each, not transactional).
CHUNK_ROWS_PER_SECOND = 2_000
TRANSACTIONAL_WRITE_UNITS = 2
# DynamoDB's default per-table maximum on-demand throughput (Service Quotas): warmer is useless.
TABLE_MAX_WRITE_UNITS = 40_000


class ConfigError(ValueError):
    """A deployment setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class ApiQuota:
    rate_limit: int
    burst_limit: int
    daily_quota: int  # the rate all day (x 86,400): never cut off early at its own rate


@dataclass(frozen=True, kw_only=True)
class Concurrency:
    """Reserved concurrency per function: a floor for the API and a cap for everything else, so
    a batch upload can never take the executions the API needs (and vice versa).

    ``processor`` also caps the processing queue's event source mapping (its pollers beyond the
    reservation would only be throttled and push messages towards the DLQ); ``sweeper`` is 1 so
    sweeps never overlap.
    """

    processor: int
    batch_tasks: int
    batch_trigger: int
    publisher: int
    sweeper: int = 1
    archiver: int = 2  # one stream batch in flight per shard


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: str
    api: ApiQuota
    # PAY_PER_REQUEST everywhere: payment traffic is bursty (batch uploads) and on-demand tables
    # absorb a 1M-row file without throttling or autoscaling lag; see README "Environment profiles".
    billing_mode: str
    glacier_transition_days: int
    # Uploads and reports (payers' rows) go this long after their write: past Glacier's minimum.
    upload_retention_days: int
    # Audit archive Object Lock: COMPLIANCE (nobody deletes early) or GOVERNANCE (dev: destroyable)
    payer_data_days: int  # a final payment keeps customer_id, description, metadata this long
    audit_archive_lock_mode: str
    audit_archive_retention_days: int
    dlq_retention_days: int
    log_retention_days: int
    alarms_enabled: bool
    deletion_protection: bool
    force_destroy: bool
    vpc_enabled: bool
    concurrency: Concurrency
    # Chunks of one file at once (Map MaxConcurrency); batch-tasks reserves one more task (another
    # file's Register or Finalize), so a second upload waits for a slot instead of a throttle.
    batch_chunk_concurrency: int
    max_payment_amount: Decimal = Decimal("1000000")
    api_p99_latency_ms: int = 2000
    # Share of API requests answered without a 5xx that the success-rate alarm holds to (%).
    api_success_rate_slo: float = 99.5
    # The sweeper runs every ``sweep_rate_minutes`` and re-queues payments unchanged for
    # ``stuck_after_minutes``: longer than a healthy queue holds one (a 1M-row file included).
    sweep_rate_minutes: int = 5
    stuck_after_minutes: int = 30
    # WAF: requests per client IP in five minutes (10/s sustained = 3,000); the fraud webhook's.
    waf_requests_per_ip: int = 3_000
    waf_webhook_requests_per_ip: int = 300
    # Pre-initialized executions of the API's `live` alias (0: none), within its reservation.
    api_provisioned_concurrency: int = 0

    @property
    def noncurrent_version_expiration_days(self) -> int:
        """Replaced batch files and reports: past Glacier's 90-day minimum storage, and at least
        as long as the logs that mention them are kept."""
        return max(self.glacier_transition_days + GLACIER_MINIMUM_DAYS, self.log_retention_days)

    @property
    def api_reserved_concurrency(self) -> int:
        """What the API's rate limit keeps busy (Little's law), at least 5."""
        return max(5, math.ceil(self.api.rate_limit * API_SECONDS_PER_REQUEST))

    @property
    def batch_rows_per_second(self) -> int:
        """Rows one file stores per second with all its chunks at once."""
        return self.batch_chunk_concurrency * CHUNK_ROWS_PER_SECOND

    @property
    def batch_write_units(self) -> int:
        """Write units/s of the payments and audit tables while one file runs at full width."""
        return min(TABLE_MAX_WRITE_UNITS, self.batch_rows_per_second * TRANSACTIONAL_WRITE_UNITS)

    @property
    def batch_index_write_units(self) -> int:
        """Write units/s of each payments GSI a new batch payment enters (batch_id, pending)."""
        return min(TABLE_MAX_WRITE_UNITS, self.batch_rows_per_second)

    def reserved_concurrency(self) -> dict[str, int]:
        """Function key (lib/functions.py) -> reserved concurrent executions."""
        c = self.concurrency
        return {
            "api": self.api_reserved_concurrency,
            "batch-trigger": c.batch_trigger,
            "batch-tasks": c.batch_tasks,
            "processor": c.processor,
            "publisher": c.publisher,
            "sweeper": c.sweeper,
            "archiver": c.archiver,
        }


PROFILES: Mapping[str, Profile] = {
    "dev": Profile(
        name="dev",
        api=ApiQuota(rate_limit=100, burst_limit=200, daily_quota=100 * 86_400),
        billing_mode="PAY_PER_REQUEST",
        glacier_transition_days=30,
        upload_retention_days=120,
        payer_data_days=120,
        audit_archive_lock_mode="GOVERNANCE",
        audit_archive_retention_days=1,
        dlq_retention_days=3,
        log_retention_days=7,
        alarms_enabled=False,
        deletion_protection=False,
        force_destroy=True,
        vpc_enabled=False,
        concurrency=Concurrency(processor=5, batch_tasks=5, batch_trigger=2, publisher=2),
        # The local cloud runs this profile on one machine: 4 chunks keep its cores busy while
        # one chunk waits on the server.
        batch_chunk_concurrency=4,
    ),
    "staging": Profile(
        name="staging",
        api=ApiQuota(rate_limit=1_000, burst_limit=2_000, daily_quota=1_000 * 86_400),
        billing_mode="PAY_PER_REQUEST",
        glacier_transition_days=30,
        upload_retention_days=120,
        payer_data_days=120,
        audit_archive_lock_mode="COMPLIANCE",
        audit_archive_retention_days=30,
        dlq_retention_days=7,
        log_retention_days=30,
        alarms_enabled=True,
        deletion_protection=False,
        force_destroy=True,
        vpc_enabled=False,
        concurrency=Concurrency(processor=20, batch_tasks=5, batch_trigger=2, publisher=5),
        batch_chunk_concurrency=4,
    ),
    "production": Profile(
        name="production",
        # Half the default account throttle (10,000 / 5,000): staging or PR stacks sharing the
        # account and region can never throttle production (see API_STAGE_SHARE_OF_ACCOUNT).
        api=ApiQuota(rate_limit=5_000, burst_limit=2_500, daily_quota=5_000 * 86_400),
        billing_mode="PAY_PER_REQUEST",
        glacier_transition_days=90,
        # 13 months: a year of disputes and chargebacks after a file (or a payment), then it goes.
        upload_retention_days=395,
        payer_data_days=395,
        audit_archive_lock_mode="COMPLIANCE",  # PCI DSS 10.5.1: twelve months, and a month more
        audit_archive_retention_days=395,
        dlq_retention_days=14,
        # PCI DSS 10.5.1: keep audit trail history for at least twelve months.
        log_retention_days=365,
        alarms_enabled=True,
        deletion_protection=True,
        force_destroy=False,
        vpc_enabled=True,
        # batch_tasks: two files' chunks at full width at once, plus one more task.
        concurrency=Concurrency(processor=50, batch_tasks=21, batch_trigger=5, publisher=10),
        # 10 chunks store ~20,000 rows/s = 40,000 write units/s on the payments and audit tables:
        # DynamoDB's default per-table maximum (TABLE_MAX_WRITE_UNITS); more would be throttled.
        batch_chunk_concurrency=10,
        api_p99_latency_ms=1000,
        api_success_rate_slo=99.9,
        sweep_rate_minutes=2,
        stuck_after_minutes=15,
        waf_requests_per_ip=15_000,
        waf_webhook_requests_per_ip=1_000,
        # A tenth of the reservation (250): a steady ~500 requests/s at 50 ms never waits for
        # an init; bursts above it scale as usual.
        api_provisioned_concurrency=25,
    ),
}


@dataclass(frozen=True, kw_only=True)
class AccountQuotas:
    """The account's regional quotas this environment must fit in (Service Quotas values)."""

    api_rate_limit: int
    api_burst_limit: int
    lambda_concurrency: int

    @classmethod
    def defaults(cls, region: str) -> AccountQuotas:
        low = region in LOW_QUOTA_REGIONS
        return cls(
            api_rate_limit=LOW_QUOTA_API_ACCOUNT_RATE if low else DEFAULT_API_ACCOUNT_RATE,
            api_burst_limit=LOW_QUOTA_API_ACCOUNT_BURST if low else DEFAULT_API_ACCOUNT_BURST,
            lambda_concurrency=DEFAULT_LAMBDA_ACCOUNT_CONCURRENCY,
        )


def validate_quotas(profile: Profile, quotas: AccountQuotas) -> None:
    """Raise ConfigError when the profile cannot fit the account's quotas.

    A stage throttled above its share of the account's API throttle competes with every other
    stage in the account and region; reserved concurrency beyond what Lambda lets an account
    reserve fails at deploy time, halfway through an apply.
    """
    api = profile.api
    for what, stage, account, variable in (
        ("rate", api.rate_limit, quotas.api_rate_limit, "API_GATEWAY_ACCOUNT_RATE_LIMIT"),
        ("burst", api.burst_limit, quotas.api_burst_limit, "API_GATEWAY_ACCOUNT_BURST_LIMIT"),
    ):
        allowed = int(account * API_STAGE_SHARE_OF_ACCOUNT)
        if stage > allowed:
            raise ConfigError(
                f"the {profile.name} profile's API {what} limit {stage:,} exceeds "
                f"{API_STAGE_SHARE_OF_ACCOUNT:.0%} of the account's regional API Gateway {what} "
                f"quota {account:,} ({variable}); other stages in the account could throttle "
                f"it: raise the quota and set {variable}, or deploy to another account"
            )
    if profile.api_provisioned_concurrency > profile.api_reserved_concurrency:
        raise ConfigError(
            f"the {profile.name} profile provisions {profile.api_provisioned_concurrency} API "
            f"executions, more than the {profile.api_reserved_concurrency} it reserves"
        )
    if profile.batch_chunk_concurrency < 1:
        raise ConfigError(
            f"the {profile.name} profile processes {profile.batch_chunk_concurrency} chunks of a "
            "batch file at once; it must be at least 1"
        )
    if profile.batch_chunk_concurrency + 1 > profile.concurrency.batch_tasks:
        raise ConfigError(
            f"the {profile.name} profile processes {profile.batch_chunk_concurrency} chunks of a "
            f"batch file at once but reserves {profile.concurrency.batch_tasks} batch-tasks "
            "executions: reserve at least one more than the chunks, or a second upload's tasks "
            "are throttled"
        )
    reserved = sum(profile.reserved_concurrency().values())
    allowed = quotas.lambda_concurrency - LAMBDA_UNRESERVED_MINIMUM
    if reserved > allowed:
        raise ConfigError(
            f"the {profile.name} profile reserves {reserved:,} concurrent Lambda executions, "
            f"more than the {allowed:,} an account with LAMBDA_ACCOUNT_CONCURRENCY="
            f"{quotas.lambda_concurrency:,} can reserve (Lambda keeps "
            f"{LAMBDA_UNRESERVED_MINIMUM} unreserved): raise the quota and set "
            "LAMBDA_ACCOUNT_CONCURRENCY"
        )


DEFAULT_QUOTAS = AccountQuotas.defaults(DEFAULT_REGION)


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
    stack: str = STACKS[0]
    quotas: AccountQuotas = DEFAULT_QUOTAS
    # VPC mode's three zones, pinned by name: an unfiltered zone lookup would move subnets when
    # AWS opens a zone (AVAILABILITY_ZONES overrides; default <region>a, b and c).
    availability_zones: tuple[str, ...] = ()
    # The role that administers the environment's KMS key (KMS_ADMIN_ROLE_ARN); without it, the
    # role that deploys. Neither may use the key for data.
    key_admin_role_arn: str | None = None
    # ALLOW_PROFILE_CHANGE=<profile>: this apply may change the profile recorded with the
    # environment (lib/config.py refuses any other change at plan time).
    profile_change_allowed: bool = False
    # Where alarm descriptions link (RUNBOOK_URL: the runbook as the on-call team reads it, e.g.
    # the repository's page of docs/RUNBOOK.md); each alarm adds its section's anchor.
    runbook_url: str = DEFAULT_RUNBOOK_URL
    # Who the alarms topic pages (ALARM_SUBSCRIPTIONS): (protocol, endpoint) pairs.
    alarm_subscriptions: tuple[tuple[str, str], ...] = ()
    # Optional custom domain of the API (API_DOMAIN_NAME + API_CERTIFICATE_ARN): TLS 1.2, and
    # the default execute-api endpoint switched off so clients cannot go around it.
    api_domain_name: str | None = None
    api_certificate_arn: str | None = None

    @property
    def zones(self) -> tuple[str, ...]:
        return self.availability_zones or tuple(f"{self.region}{z}" for z in "abc")

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
        profile_name = env.get("ENVIRONMENT", "").strip()
        if not profile_name and suffix not in PROFILES:
            # A profile taken by default would turn a production stack named ``prod`` into a
            # dev one on the first apply without ENVIRONMENT (no deletion protection, no VPC,
            # no alarms, 7 days of logs): a suffix that names no profile must be told one.
            raise ConfigError(
                f"ENVIRONMENT is required: ENVIRONMENT_SUFFIX={suffix!r} names no profile, so "
                f"set ENVIRONMENT to one of {', '.join(PROFILES)}"
            )
        profile_name = profile_name or suffix
        if profile_name not in PROFILES:
            raise ConfigError(
                f"ENVIRONMENT={profile_name!r} is not a known profile: "
                f"use one of {', '.join(PROFILES)}"
            )
        change = env.get("ALLOW_PROFILE_CHANGE", "").strip()
        if change and change != profile_name:
            raise ConfigError(
                f"ALLOW_PROFILE_CHANGE={change!r} must name the profile being applied "
                f"({profile_name}): it lets this one apply change the environment's profile"
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
        stack = env.get("PAYMENTS_STACK", "").strip() or STACKS[0]
        if stack not in STACKS:
            raise ConfigError(
                f"PAYMENTS_STACK={stack!r} is not a stack: use one of {', '.join(STACKS)}"
            )
        region = region or DEFAULT_REGION
        quotas = _quotas(env, region)
        validate_quotas(PROFILES[profile_name], quotas)
        zones = tuple(z.strip() for z in env.get("AVAILABILITY_ZONES", "").split(",") if z.strip())
        if zones and (
            len(zones) != ZONE_COUNT
            or len(set(zones)) != ZONE_COUNT
            or not all(re.fullmatch(re.escape(region) + r"[a-z]", z) for z in zones)
        ):
            raise ConfigError(
                f"AVAILABILITY_ZONES={','.join(zones)!r} must name {ZONE_COUNT} different zones "
                f"of {region}, such as {region}a,{region}b,{region}c"
            )
        admin = env.get("KMS_ADMIN_ROLE_ARN", "").strip() or None
        if admin and not ROLE_ARN_PATTERN.match(admin):
            raise ConfigError(
                f"KMS_ADMIN_ROLE_ARN={admin!r} is not an IAM role ARN such as "
                "arn:aws:iam::123456789012:role/key-admins"
            )
        if admin is None and profile_name != "dev":
            # Whoever deploys (a PR pipeline's role) must not be able to disable or schedule
            # the deletion of a staging or production key.
            raise ConfigError(
                f"KMS_ADMIN_ROLE_ARN is required for the {profile_name} profile: the role that "
                "administers the environment's KMS key, apart from the role that deploys"
            )
        domain, certificate = _custom_domain(env, region)
        subscriptions = _alarm_subscriptions(env)
        if not subscriptions and profile_name == "production":
            raise ConfigError(
                "ALARM_SUBSCRIPTIONS is required for the production profile: who the alarms "
                "page (email:<address>, https://<endpoint> or sqs:<queue ARN>, comma-separated)"
            )
        runbook = env.get("RUNBOOK_URL", "").strip() or DEFAULT_RUNBOOK_URL
        if runbook != DEFAULT_RUNBOOK_URL and not re.match(r"^https://[^\s#]+$", runbook):
            raise ConfigError(
                f"RUNBOOK_URL={runbook!r} must be an https URL without a fragment (each alarm "
                "adds its section's)"
            )
        return cls(
            suffix=suffix,
            profile=PROFILES[profile_name],
            region=region,
            state=state,
            endpoint_url=endpoint,
            stack=stack,
            quotas=quotas,
            availability_zones=zones,
            key_admin_role_arn=admin,
            api_domain_name=domain,
            api_certificate_arn=certificate,
            profile_change_allowed=bool(change),
            runbook_url=runbook,
            alarm_subscriptions=subscriptions,
            **extra,
        )


def _alarm_subscriptions(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """ALARM_SUBSCRIPTIONS as SNS (protocol, endpoint) pairs."""
    subscriptions = []
    for entry in (e.strip() for e in env.get("ALARM_SUBSCRIPTIONS", "").split(",")):
        if not entry:
            continue
        kind, _, target = entry.partition(":")
        if kind == "email" and ALARM_EMAIL_PATTERN.match(target):
            subscriptions.append(("email", target))
        elif kind == "https" and re.match(r"^//[^\s/]+(/\S*)?$", target):
            subscriptions.append(("https", entry))
        elif kind == "sqs" and ALARM_QUEUE_PATTERN.match(target):
            subscriptions.append(("sqs", target))
        else:
            raise ConfigError(
                f"ALARM_SUBSCRIPTIONS entry {entry!r} is not email:<address>, "
                "https://<endpoint> or sqs:<queue ARN>"
            )
    return tuple(subscriptions)


def _custom_domain(env: Mapping[str, str], region: str) -> tuple[str | None, str | None]:
    domain = env.get("API_DOMAIN_NAME", "").strip().lower() or None
    certificate = env.get("API_CERTIFICATE_ARN", "").strip() or None
    if bool(domain) != bool(certificate):
        raise ConfigError(
            "API_DOMAIN_NAME and API_CERTIFICATE_ARN go together: set both for a custom domain, "
            "or neither"
        )
    if domain and not DOMAIN_PATTERN.match(domain):
        raise ConfigError(f"API_DOMAIN_NAME={domain!r} is not a DNS name such as api.example.com")
    if certificate and not re.match(
        rf"^arn:aws[a-z-]*:acm:{re.escape(region)}:\d{{12}}:certificate/[0-9a-f-]+$", certificate
    ):
        raise ConfigError(
            f"API_CERTIFICATE_ARN={certificate!r} is not an ACM certificate ARN in {region} "
            "(a regional API needs its certificate in its own region)"
        )
    return domain, certificate


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive whole number (the account's quota)")
    return int(raw)


def _quotas(env: Mapping[str, str], region: str) -> AccountQuotas:
    defaults = AccountQuotas.defaults(region)
    return AccountQuotas(
        api_rate_limit=_positive_int(
            env, "API_GATEWAY_ACCOUNT_RATE_LIMIT", defaults.api_rate_limit
        ),
        api_burst_limit=_positive_int(
            env, "API_GATEWAY_ACCOUNT_BURST_LIMIT", defaults.api_burst_limit
        ),
        lambda_concurrency=_positive_int(
            env, "LAMBDA_ACCOUNT_CONCURRENCY", defaults.lambda_concurrency
        ),
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
