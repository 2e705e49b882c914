"""Every functional test runs in its own moto world (in-process, no network)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

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


# Every environment's audit log is ``payments-audit-log-<suffix>`` (lib/tables.py).
AUDIT_LOG_PREFIX = "payments-audit-log-"
INSERT_ONLY = "attribute_not_exists(entity_id)"


@pytest.fixture(autouse=True)
def audit_log_is_insert_only(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Every write any code path makes to an audit log in any functional test (a handler's, a
    transaction's item, the workflow's own MarkFailed run by moto's Step Functions) is a put
    conditional on the entry not existing: nothing overwrites, updates or deletes an entry.

    moto's transactions and batch writes apply their items through the backend's own
    put/update/delete, so watching those three (and PartiQL) sees every write."""
    from moto.dynamodb.models import DynamoDBBackend

    violations: list[str] = []

    def watch(name: str, check: Any) -> None:
        original = getattr(DynamoDBBackend, name)
        signature = inspect.signature(original)

        def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = signature.bind(self, *args, **kwargs).arguments
            problem = check(call)
            if problem:
                violations.append(f"{name}: {problem}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, watched)

    def audit(call: dict[str, Any]) -> bool:
        return str(call.get("table_name", "")).startswith(AUDIT_LOG_PREFIX)

    watch(
        "put_item",
        lambda call: (
            audit(call)
            and (call.get("condition_expression") or "").strip() != INSERT_ONLY
            and f"{call['table_name']} put with condition {call.get('condition_expression')!r}"
        ),
    )
    watch("update_item", lambda call: audit(call) and f"{call['table_name']} updated")
    watch("delete_item", lambda call: audit(call) and f"{call['table_name']} deleted")
    watch(
        "execute_statement",
        lambda call: AUDIT_LOG_PREFIX in call["statement"] and f"PartiQL {call['statement']!r}",
    )
    yield violations
    if request.node.get_closest_marker("tampers_with_audit_log"):
        return
    assert violations == [], f"audit log writes that are not insert-only: {violations[:5]}"
