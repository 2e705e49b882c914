"""`make restore-drill` on the local cloud: the three tables restored into copies, the copies
reconciled, the copies deleted; and a table with PITR off is reported and fails the drill."""

from __future__ import annotations

import subprocess

from localcloud.client import LocalCloud
from tests.e2e.operator import operator_command


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    return operator_command("restore_drill", *args, timeout=900)


def test_the_tables_restore_and_the_copies_reconcile(cloud: LocalCloud) -> None:
    # At least one payment, so the copies have something to agree on.
    created = cloud.request(
        "POST", "/payments", body={"amount": "12.34", "currency": "EUR", "payment_id": "drill-1"}
    )
    assert created.status in (200, 202), created.body
    dynamodb = cloud.client("dynamodb")
    before = set(dynamodb.list_tables()["TableNames"])
    result = drill()
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    restored = [line for line in lines if line.startswith("restored ")]
    assert [line.split(" -> ")[0] for line in restored] == [
        "restored payments-local",
        "restored payments-processing-status-local",
        "restored payments-audit-log-local",
    ], lines
    assert "RESTORE DRILL PASSED" in lines
    assert set(dynamodb.list_tables()["TableNames"]) == before  # the copies are gone


def test_a_table_without_pitr_fails_the_drill_naming_it(cloud: LocalCloud) -> None:
    dynamodb = cloud.client("dynamodb")
    table = "payments-processing-status-local"
    dynamodb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )
    try:
        result = drill()
    finally:
        dynamodb.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    assert result.returncode == 1
    assert f"PROBLEM  {table}: point-in-time recovery is off" in result.stdout
    assert not [t for t in dynamodb.list_tables()["TableNames"] if "-drill-" in t]
