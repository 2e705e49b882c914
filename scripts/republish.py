"""``make republish``: publish audited changes again under their original event_ids.

    make republish ARGS="--dlq"                         # what the outbox's dead-letter queue names
    make republish ARGS="--entity PAYMENT#pay-42"       # every event of one payment (or BATCH#id)
    make republish ARGS="--since 2026-11-27T00:00:00Z --until 2026-11-28T00:00:00Z"
    make republish ARGS="--archive --dlq"               # what the archiver gave up on, archived

Reads the audit log (never trimmed) and publishes each selected entry's event exactly as the
publisher makes it (same ``event_id`` and body), each entity's events in version order, one
after another (payments/republish.py). Idempotent: a second run only makes copies that
consumers drop by ``event_id``. ``--dlq`` reads the messages the audit-log stream mapping sent
to its on-failure queue, republishes the records each describes (read again from the stream
while it has them, else the audit entries of the records' arrival window, a little wider), and
deletes a message only once all of it went out. ``--dry-run`` lists and publishes nothing.

``--archive`` writes the selected entries into the audit archive instead of publishing them
(``--dlq``: what the archiver's ``audit-archive-dlq`` names), one object per selection; a second
run writes nothing new. Against AWS it needs AUDIT_ARCHIVE_BUCKET.

Against AWS, export AUDIT_LOG_TABLE and PAYMENT_EVENTS_TOPIC_ARN (or pass ``--topic-arn``); the
dead-letter queue is found from the stream's event source mapping (or pass ``--dlq-url``). On
the local cloud (its ``outputs.json`` present, in ``.local/`` by default) everything comes from
the deployment. Exits 1 when something could not be published.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from deployment import local_outputs  # noqa: E402
from payments import env, republish  # noqa: E402


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", help="ISO 8601 with a time zone: entries at or after")
    parser.add_argument("--until", help="ISO 8601 with a time zone: entries before (default now)")
    parser.add_argument(
        "--entity", action="append", help="PAYMENT#<payment_id> or BATCH#<batch_id> (repeatable)"
    )
    parser.add_argument(
        "--dlq", action="store_true", help="republish what the outbox dead-letter queue names"
    )
    parser.add_argument("--dlq-url", help="the outbox dead-letter queue (default: the mapping's)")
    parser.add_argument("--topic-arn", help="payment-events (default: PAYMENT_EVENTS_TOPIC_ARN)")
    parser.add_argument("--dry-run", action="store_true", help="list, publish nothing")
    parser.add_argument(
        "--archive", action="store_true", help="write into the audit archive instead of publishing"
    )
    args = parser.parse_args(argv)
    modes = [bool(args.since or args.until), bool(args.entity), args.dlq]
    if sum(modes) != 1:
        parser.error("choose one of --since/--until, --entity or --dlq")
    if args.dlq_url and not args.dlq:
        parser.error("--dlq-url goes with --dlq")
    if args.dry_run and args.dlq:
        parser.error("--dry-run lists entries by --since/--until or --entity, not --dlq")
    try:
        if modes[0]:
            if not args.since:
                parser.error("--until needs --since")
            args.since = republish.instant(args.since, "--since")
            now = datetime.now(UTC).isoformat()
            args.until = republish.instant(args.until or now, "--until")
            if args.since >= args.until:
                parser.error(f"--since {args.since} is not before --until {args.until}")
        args.entity = [republish.entity(e) for e in args.entity or ()]
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _target(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """(audit table, topic ARN, audit archive bucket when --archive) of the deployment."""
    stack = local_outputs()
    if stack is not None:
        return (
            stack["audit_log_table_name"],
            args.topic_arn or stack["payment_events_topic_arn"],
            stack["audit_archive_bucket_name"] if args.archive else None,
        )
    table = os.environ.get(env.AUDIT_LOG_TABLE, "")
    if args.archive:
        bucket = os.environ.get(env.AUDIT_ARCHIVE_BUCKET, "")
        if not table or not bucket:
            raise SystemExit(
                f"republish: export {env.AUDIT_LOG_TABLE} and {env.AUDIT_ARCHIVE_BUCKET} for "
                "--archive, or start the local cloud"
            )
        return table, "", bucket
    topic = args.topic_arn or os.environ.get(env.PAYMENT_EVENTS_TOPIC_ARN, "")
    if not table or not topic:
        raise SystemExit(
            f"republish: export {env.AUDIT_LOG_TABLE} and {env.PAYMENT_EVENTS_TOPIC_ARN} "
            "(or pass --topic-arn), or start the local cloud"
        )
    return table, topic, None


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    started = time.monotonic()
    table, topic, bucket = _target(args)
    publisher = republish.Republisher(table, topic, archive_bucket=bucket)
    done = "entries archived:     " if bucket else "events published:     "
    if args.dlq:
        stream = republish.stream_of(table)
        base = "audit-archive-dlq" if bucket else "outbox-dlq"
        queue = args.dlq_url or (stream and republish.dead_letter_queue(stream, base))
        if not queue:
            raise SystemExit(f"republish: no {base} on the audit log's stream mappings")
        print(f"republish: the dead-letter queue {queue}")
        report = publisher.drain_dead_letters(queue)
        result = report.result
        print(f"dead-letter messages:  {report.messages} ({report.deleted} done and deleted)")
        for why in report.kept:
            print(f"  kept: {why}")
    else:
        if args.entity:
            print(f"republish: {', '.join(args.entity)}")
            entries = [e for name in args.entity for e in publisher.entries_of(name)]
        else:
            print(f"republish: audit entries at {args.since} .. {args.until}")
            entries = publisher.entries_between(args.since, args.until)
        if args.dry_run:
            pending, unmappable = republish.ordered(entries)
            for item in pending:
                print(f"  {item.event['event_id']}  {item.event['type']}")
            print(f"would publish {len(pending)} events; {len(unmappable)} entries have none")
            return 0
        result = publisher.deliver(entries)
    print(f"audit entries:         {result.entries}")
    calls = "PutObject" if bucket else "PublishBatch"
    print(f"{done} {result.published} in {result.calls} {calls} calls")
    for problem in result.unmappable + result.failed:
        print(f"  - {problem}")
    ok = result.ok and not (args.dlq and report.kept)
    print(f"{'OK' if ok else 'INCOMPLETE'} in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
