"""``make restore-drill``: prove the backups by restoring them, not by trusting them.

    make restore-drill                                   # the latest restorable time
    make restore-drill ARGS="--at 2026-12-01T09:00:00Z"  # a given point in time
    make restore-drill ARGS="--keep"                     # leave the copies for a closer look

Restores each of the environment's three tables to one point in time (DynamoDB point-in-time
recovery) into new tables ``<table>-drill-<stamp>``, with the source's key (the CMK) and
on-demand billing, waits for them, runs the reconciler against the copies (every payment created
in the day before that time: history, audit entries, batch counters; events are not part of a
backup), prints what it found, and deletes the copies unless ``--keep``. Exits 1 when a table
has PITR off, a restore fails, or the copies do not reconcile.

Acts on the environment the deploy variables describe (the local cloud when it runs and no AWS
target is set). On AWS a restore takes minutes to hours by table size; the caller needs
``dynamodb:RestoreTableToPointInTime`` and the data actions on the copies (docs/RUNBOOK.md,
"Restore").
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from botocore.exceptions import ClientError  # noqa: E402
from deployment import operator_target  # noqa: E402
from payments.config import Config  # noqa: E402
from payments.reconcile import Reconciler  # noqa: E402
from payments.repository import Repository  # noqa: E402

from lib.tables import AUDIT_LOG, PAYMENTS, PROCESSING_STATUS  # noqa: E402

# How far before the restore time the reconciled payments were created.
SCOPE = timedelta(days=1)
RESTORE_TIMEOUT_SECONDS = 4 * 60 * 60


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", help="ISO 8601 with a time zone (default: the latest restorable)")
    parser.add_argument("--keep", action="store_true", help="do not delete the restored copies")
    return parser.parse_args(argv)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def restore(dynamodb: Any, source: str, target: str, at: datetime | None) -> str | None:
    """Start one restore; the problem in one line, or None."""
    backups = dynamodb.describe_continuous_backups(TableName=source)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        return f"{source}: point-in-time recovery is off, there is nothing to restore"
    when = {"RestoreDateTime": at} if at else {"UseLatestRestorableTime": True}
    described = dynamodb.describe_table(TableName=source)["Table"]
    key = described.get("SSEDescription", {}).get("KMSMasterKeyArn")
    sse = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key} if key else {"Enabled": True}
    try:
        dynamodb.restore_table_to_point_in_time(
            SourceTableName=source,
            TargetTableName=target,
            BillingModeOverride="PAY_PER_REQUEST",
            SSESpecificationOverride=sse,
            **when,
        )
    except ClientError as exc:
        return f"{source}: the restore was refused ({exc.response['Error']['Message']})"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    target = operator_target("restore-drill")
    if target is None:
        return 1
    settings, client, where = target.settings, target.client, target.where
    dynamodb = client("dynamodb")
    at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    copies = {
        base: (settings.table_name(base), f"{settings.table_name(base)}-drill-{stamp}")
        for base in (PAYMENTS, PROCESSING_STATUS, AUDIT_LOG)
    }
    print(f"restore drill of {settings.suffix!r} on {where}, to {_iso(at) if at else 'latest'}")
    problems = [p for s, t in copies.values() if (p := restore(dynamodb, s, t, at))]
    started = [t for s, t in copies.values() if dynamodb_has(dynamodb, t)]
    try:
        if problems:
            for problem in problems:
                print(f"PROBLEM  {problem}")
            return 1
        waiter = dynamodb.get_waiter("table_exists")
        for source, target in copies.values():
            began = time.monotonic()
            waiter.wait(
                TableName=target,
                WaiterConfig={"Delay": 5, "MaxAttempts": RESTORE_TIMEOUT_SECONDS // 5},
            )
            items = sum(
                page["Count"]
                for page in dynamodb.get_paginator("scan").paginate(
                    TableName=target, Select="COUNT"
                )
            )
            print(
                f"restored {source} -> {target}: {items:,} items "
                f"({time.monotonic() - began:.0f} s to ACTIVE)"
            )
        restored_at = at or datetime.now(UTC)
        config = Config(
            environment=settings.profile.name,
            payments_table=copies[PAYMENTS][1],
            processing_status_table=copies[PROCESSING_STATUS][1],
            audit_log_table=copies[AUDIT_LOG][1],
        )
        reconciler = Reconciler(config, repo=Repository(config, dynamodb=dynamodb))
        since, until = _iso(restored_at - SCOPE), _iso(restored_at)
        payments = reconciler.payments_created(since, until)
        batch_ids = sorted({str(p["batch_id"]) for p in payments if p.get("batch_id")})
        report = reconciler.check(payments, batch_ids=batch_ids, published=None)
        print(f"reconcile of the copies: payments created from {since} to {until}")
        for line in report.lines():
            print(line)
        print("RESTORE DRILL PASSED" if report.ok else "RESTORE DRILL FOUND MISMATCHES")
        return 0 if report.ok else 1
    finally:
        if not args.keep:
            for target in started:
                dynamodb.delete_table(TableName=target)
            if started:
                print(f"deleted the copies ({', '.join(started)})")


def dynamodb_has(dynamodb: Any, table: str) -> bool:
    try:
        dynamodb.describe_table(TableName=table)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise
    return True


if __name__ == "__main__":
    sys.exit(main())
