"""Every functional test runs in its own moto world (in-process, no network)."""

from __future__ import annotations

import os

import pytest
from moto import mock_aws

from tests.functional.world import (
    REGION,
    LambdaContext,
    World,
    build_world,
    serialized_moto_transactions,
)

os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
os.environ["AWS_REGION"] = REGION
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    from handlers import common
    from payments import aws

    # Retries back off in a thousandth of real time: the tests check what is retried, not how
    # long it waits.
    monkeypatch.setattr(aws, "BACKOFF_BASE_SECONDS", aws.BACKOFF_BASE_SECONDS / 1000)
    monkeypatch.setattr(aws, "BACKOFF_CAP_SECONDS", aws.BACKOFF_CAP_SECONDS / 1000)
    with mock_aws(), serialized_moto_transactions():
        saved = dict(os.environ)
        common.reset()
        try:
            yield build_world()
        finally:
            common.reset()
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
