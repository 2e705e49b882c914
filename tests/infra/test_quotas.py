"""Synth refuses profiles that cannot fit the account's documented quotas (issue 9, item 4)."""

from __future__ import annotations

import pytest

from lib.settings import (
    API_STAGE_SHARE_OF_ACCOUNT,
    DEFAULT_API_ACCOUNT_BURST,
    DEFAULT_API_ACCOUNT_RATE,
    LAMBDA_UNRESERVED_MINIMUM,
    PROFILES,
    AccountQuotas,
    ConfigError,
    Settings,
    validate_quotas,
)
from tests.infra.conftest import ALARM_SUBSCRIPTIONS, KEY_ADMIN_ROLE_ARN


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_fits_the_default_quotas_with_room_for_other_stages(name):
    profile = PROFILES[name]
    assert profile.api.rate_limit <= DEFAULT_API_ACCOUNT_RATE * API_STAGE_SHARE_OF_ACCOUNT
    assert profile.api.burst_limit <= DEFAULT_API_ACCOUNT_BURST * API_STAGE_SHARE_OF_ACCOUNT
    validate_quotas(profile, AccountQuotas.defaults("us-east-1"))


def test_production_no_longer_takes_the_whole_account_throttle():
    production = PROFILES["production"].api
    assert production.rate_limit < DEFAULT_API_ACCOUNT_RATE
    assert production.burst_limit < DEFAULT_API_ACCOUNT_BURST


def test_production_in_a_low_quota_region_stops_synth_naming_the_variable():
    with pytest.raises(ConfigError, match="API_GATEWAY_ACCOUNT_RATE_LIMIT"):
        Settings.from_env({"ENVIRONMENT": "production", "AWS_REGION": "eu-south-1"})


def test_a_raised_quota_lets_it_through():
    settings = Settings.from_env(
        {
            "ENVIRONMENT": "production",
            "AWS_REGION": "eu-south-1",
            "API_GATEWAY_ACCOUNT_RATE_LIMIT": "10000",
            "API_GATEWAY_ACCOUNT_BURST_LIMIT": "5000",
            "KMS_ADMIN_ROLE_ARN": KEY_ADMIN_ROLE_ARN,
            "ALARM_SUBSCRIPTIONS": ALARM_SUBSCRIPTIONS,
        }
    )
    assert settings.quotas.api_rate_limit == 10_000


def test_dev_fits_a_low_quota_region():
    Settings.from_env({"ENVIRONMENT": "dev", "AWS_REGION": "eu-south-1"})


def test_burst_is_checked_too():
    with pytest.raises(ConfigError, match="burst"):
        Settings.from_env({"ENVIRONMENT": "production", "API_GATEWAY_ACCOUNT_BURST_LIMIT": "4000"})


def test_reserved_concurrency_beyond_the_account_quota_stops_synth():
    reserved = sum(PROFILES["production"].reserved_concurrency().values())
    too_small = reserved + LAMBDA_UNRESERVED_MINIMUM - 1
    with pytest.raises(ConfigError, match="LAMBDA_ACCOUNT_CONCURRENCY"):
        Settings.from_env(
            {"ENVIRONMENT": "production", "LAMBDA_ACCOUNT_CONCURRENCY": str(too_small)}
        )
    Settings.from_env(
        {
            "ENVIRONMENT": "production",
            "LAMBDA_ACCOUNT_CONCURRENCY": str(too_small + 1),
            "KMS_ADMIN_ROLE_ARN": KEY_ADMIN_ROLE_ARN,
            "ALARM_SUBSCRIPTIONS": ALARM_SUBSCRIPTIONS,
        }
    )


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5"])
def test_malformed_quota_is_a_clear_error(value):
    with pytest.raises(ConfigError, match="LAMBDA_ACCOUNT_CONCURRENCY="):
        Settings.from_env({"LAMBDA_ACCOUNT_CONCURRENCY": value})


def test_provisioned_executions_never_exceed_the_reservation():
    for profile in PROFILES.values():
        assert profile.api_provisioned_concurrency <= profile.api_reserved_concurrency
