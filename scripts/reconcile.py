"""``make reconcile``: check that histories, audit entries and published events agree (read-only).

    make reconcile                                  # the local cloud, payments of the last 24 h
    make reconcile ARGS="--batch settlement-0042"   # one batch file and its payments
    make reconcile ARGS="--since 2026-11-27T00:00:00Z --until 2026-11-28T00:00:00Z"

Against AWS, export the table names the functions get (PAYMENTS_TABLE, PROCESSING_STATUS_TABLE,
AUDIT_LOG_TABLE) and, to check events, pass ``--events-queue`` with a queue subscribed to
``payment-events`` (raw delivery). Events are read without being consumed: each message is
received once with a long visibility timeout and made visible again afterwards, so point it at a
queue whose redrive policy allows a few more receives (or a queue kept for auditing).
The audit archive is checked too when its bucket is known (AUDIT_ARCHIVE_BUCKET, or
``--archive-bucket``): the objects of the scope's days, from the day before its first payment to
today, are read and every entry of the scope made since then must be there unchanged.
On the local cloud (its ``outputs.json`` present, in ``.local/`` by default) everything comes
from the deployment, events from the stack's ``payment-events-subscriber`` queue.

Prints a report; exits 1 when anything disagrees, 0 when the books agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from deployment import local_outputs  # noqa: E402
from payments import archive, env  # noqa: E402
from payments.config import Config, load  # noqa: E402
from payments.reconcile import Reconciler, Report  # noqa: E402

# Long enough to read a large queue once; the messages are made visible again at the end.
READ_VISIBILITY_SECONDS = 900


def event_of(message: dict[str, Any]) -> dict[str, Any]:
    """The event an SQS message from the events topic carries."""
    body = json.loads(message["Body"])
    # Raw delivery carries the event itself; otherwise it is SNS's envelope.
    return json.loads(body["Message"]) if "Message" in body else body


def read_events(
    sqs: Any, queue_url: str, *, wait_seconds: int = 1, empty_polls: int = 3
) -> list[dict[str, Any]]:
    """Every message on the queue, parsed, without deleting any. SQS samples a subset of its
    servers per receive, so the queue counts as read after ``empty_polls`` empty answers."""
    events: list[dict[str, Any]] = []
    handles: list[str] = []
    empty = 0
    try:
        while empty < empty_polls:
            got = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=READ_VISIBILITY_SECONDS,
                WaitTimeSeconds=wait_seconds,
            ).get("Messages", [])
            if not got:
                empty += 1
                continue
            empty = 0
            for message in got:
                handles.append(message["ReceiptHandle"])
                events.append(event_of(message))
    finally:
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start : start + 10])
                ],
            )
    return events


def read_archive(
    bucket: str, payments: list[dict[str, Any]], since: str | None
) -> archive.ArchiveIndex:
    """The archive's objects from the day before the scope's first payment (or ``since``) to
    today: an entry is archived in the hour it was made, within seconds."""
    import boto3

    starts = [str(p.get("created_at", "")) for p in payments if p.get("created_at")]
    if since:
        starts.append(since)
    today = datetime.now(UTC).date()
    first = min(starts, default=today.isoformat())
    try:
        first_day = datetime.fromisoformat(first[:10]).date() - timedelta(days=1)
    except ValueError:
        first_day = today - timedelta(days=1)
    return archive.read(boto3.client("s3"), bucket, first_day, today)


def _local_cloud() -> tuple[Config, Any, str | None] | None:
    stack = local_outputs()
    if stack is None:
        return None
    import boto3

    config = Config(
        environment="dev",
        payments_table=stack["payments_table_name"],
        processing_status_table=stack["processing_status_table_name"],
        audit_log_table=stack["audit_log_table_name"],
        audit_archive_bucket=stack.get("audit_archive_bucket_name"),
    )
    sqs = boto3.client("sqs", endpoint_url=stack["endpoint_url"])
    return config, sqs, stack.get("payment_events_subscriber_queue_url")


def run(args: argparse.Namespace) -> Report:
    local = _local_cloud()
    if local is not None:
        config, sqs, queue_url = local
    else:
        import boto3

        config = load().require(
            env.PAYMENTS_TABLE, env.PROCESSING_STATUS_TABLE, env.AUDIT_LOG_TABLE
        )
        sqs, queue_url = boto3.client("sqs"), None
    if args.stuck_after is not None:
        config = Config(**{**config.__dict__, "stuck_after_seconds": args.stuck_after})
    queue_url = args.events_queue or queue_url
    reconciler = Reconciler(config)
    payments: dict[str, dict[str, Any]] = {}
    scopes = []
    for batch_id in args.batch or ():
        payments |= {p["payment_id"]: p for p in reconciler.payments_of_batch(batch_id)}
        scopes.append(f"batch {batch_id}")
    if args.since or args.until or not args.batch:
        now = datetime.now(UTC)
        until = args.until or now.isoformat().replace("+00:00", "Z")
        since = args.since or (now - timedelta(hours=24)).isoformat().replace("+00:00", "Z")
        payments |= {p["payment_id"]: p for p in reconciler.payments_created(since, until)}
        scopes.append(f"payments created from {since} to {until}")
    scope = "; ".join(scopes)
    published = None
    if not args.no_events:
        if not queue_url:
            raise SystemExit("reconcile: pass --events-queue URL (or --no-events to skip events)")
        published = read_events(sqs, queue_url)
    index = None
    bucket = args.archive_bucket or config.audit_archive_bucket
    if bucket and not args.no_archive:
        index = read_archive(bucket, list(payments.values()), args.since)
    print(f"reconcile: {scope}")
    return reconciler.check(
        payments.values(), batch_ids=args.batch or (), published=published, archive=index
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", action="append", help="a batch_id (repeatable)")
    parser.add_argument("--since", help="ISO 8601 UTC, payments created at or after")
    parser.add_argument("--until", help="ISO 8601 UTC, payments created before")
    parser.add_argument("--events-queue", help="URL of a queue subscribed to payment-events")
    parser.add_argument("--no-events", action="store_true", help="skip the published-event check")
    parser.add_argument(
        "--archive-bucket", help="the audit archive (default: AUDIT_ARCHIVE_BUCKET)"
    )
    parser.add_argument("--no-archive", action="store_true", help="skip the audit archive check")
    parser.add_argument(
        "--stuck-after", type=int, help="seconds a non-final payment may rest (default: settings)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    for line in report.lines():
        print(line)
    print(f"{'OK' if report.ok else 'MISMATCH'} in {time.monotonic() - started:.1f}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
