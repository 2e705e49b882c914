"""The audit archive: the real archiver handler over the audit log's stream into an Object Lock
bucket (moto), and reconcile's check of the archive against the table."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from payments import archive, env
from payments.batch import Batches
from payments.config import load
from payments.reconcile import Reconciler
from payments.repository import serialize

from tests.functional.batch_driver import process_chunks
from tests.functional.test_outbox import deliver, register
from tests.functional.test_reconcile import everything, settle, submit


def archive_index(world) -> archive.ArchiveIndex:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    return archive.read(
        world.s3, world.env[env.AUDIT_ARCHIVE_BUCKET], today - timedelta(days=1), today
    )


def check(world):
    return Reconciler(load()).check(everything(world), archive=archive_index(world))


def busy_world(world, *, payments: int, rows: int) -> None:
    """API payments and a batch file, processed to their final status."""
    for i in range(payments):
        submit(f"p{i}")
    body = "payment_id,amount,currency\n" + "".join(
        f"b{i},{i % 97 + 1}.25,EUR\n" for i in range(rows)
    )
    state = register(world, "b1", body.encode(), "0A")
    batches = Batches(load())
    batches.finalize(process_chunks(batches, state))
    settle(world)


def objects(world) -> list[dict]:
    bucket = world.env[env.AUDIT_ARCHIVE_BUCKET]
    return world.s3.list_object_versions(Bucket=bucket).get("Versions", [])


class TestArchiver:
    def test_every_entry_of_a_busy_day_is_archived_and_reconciles(self, world):
        busy_world(world, payments=30, rows=300)
        keys = world.drain_archive(batch_size=100)
        entries = world.audit()
        # 330 payments through RECEIVED, PROCESSING and a final status, and the batch's end.
        assert len(entries) == 330 * 3 + 1
        assert len(keys) == len(objects(world)) == -(-len(entries) // 100)
        report = check(world)
        assert report.mismatches == []
        assert report.archived == len(entries)
        assert report.archive_objects == len(keys)

    def test_a_retried_batch_writes_nothing_new(self, world):
        for i in range(20):
            submit(f"p{i}")
        records = world.stream_records("archiver")
        from handlers import archiver

        from tests.functional.world import LambdaContext

        first = archiver.handler({"Records": records}, LambdaContext("payments-archiver"))
        again = archiver.handler({"Records": records}, LambdaContext("payments-archiver"))
        assert first == again
        (version,) = objects(world)
        assert version["Key"] == first["key"]
        # A bisected retry writes its halves beside it; reconcile reads the union.
        half = len(records) // 2
        archiver.handler({"Records": records[:half]}, LambdaContext("payments-archiver"))
        archiver.handler({"Records": records[half:]}, LambdaContext("payments-archiver"))
        assert len(objects(world)) == 3
        report = check(world)
        assert report.mismatches == [] and report.archived == 20

    def test_each_object_is_locked_for_the_retention(self, world):
        submit("p0")
        (key,) = world.drain_archive()
        bucket = world.env[env.AUDIT_ARCHIVE_BUCKET]
        head = world.s3.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] > head["LastModified"]
        (version,) = objects(world)
        with pytest.raises(ClientError) as refused:
            world.s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"

    def test_the_lines_hold_each_entry_and_its_digest(self, world):
        submit("p0")
        (key,) = world.drain_archive()
        body = world.s3.get_object(Bucket=world.env[env.AUDIT_ARCHIVE_BUCKET], Key=key)["Body"]
        (line,) = [json.loads(text) for text in body.read().decode().splitlines()]
        (entry,) = world.audit()
        assert (line["event"], line["entity_id"], line["sk"]) == (
            "INSERT",
            "PAYMENT#p0",
            entry["sk"],
        )
        assert line["digest"] == archive.digest(entry)
        assert line["entry"]["amount"] == "5"


class TestReconcileAgainstTheArchive:
    @pytest.mark.tampers_with_audit_log
    def test_an_entry_rewritten_in_the_table_differs_from_its_copy(self, world):
        submit("p0")
        deliver(world)
        world.drain_archive()
        table = world.env[env.AUDIT_LOG_TABLE]
        (entry,) = [e for e in world.audit() if e["sk"].endswith("#RECEIVED")]
        # What the table's policy denies every role; the archive still has the original.
        world.dynamodb.put_item(TableName=table, Item=serialize({**entry, "amount": "50"}))
        problems = check(world).mismatches
        assert f"audit entry PAYMENT#p0 / {entry['sk']} differs from its archived copy" in problems
        world.drain_archive()  # the stream's MODIFY record is archived as evidence
        problems = check(world).mismatches
        assert any(
            p.startswith(f"audit entry PAYMENT#p0 / {entry['sk']} was changed in the table: MODIFY")
            for p in problems
        )

    @pytest.mark.tampers_with_audit_log
    def test_an_entry_deleted_from_the_table_is_still_archived(self, world):
        submit("p0")
        deliver(world)
        world.drain_archive()
        (entry,) = [e for e in world.audit() if e["sk"].endswith("#PROCESSING")]
        world.dynamodb.delete_item(
            TableName=world.env[env.AUDIT_LOG_TABLE],
            Key=serialize({"entity_id": entry["entity_id"], "sk": entry["sk"]}),
        )
        problems = check(world).mismatches
        assert (
            f"archived audit entry PAYMENT#p0 / {entry['sk']} is missing from the table" in problems
        )

    def test_an_entry_never_archived_is_reported_once_it_is_old_enough(self, world):
        from datetime import UTC, datetime, timedelta

        submit("p0")
        world.drain_archive()
        deliver(world)  # PROCESSING and a final status, not archived
        fresh = Reconciler(load()).check(everything(world), archive=archive_index(world))
        assert fresh.mismatches == [] and fresh.archive_pending == 2
        later = datetime.now(UTC) + timedelta(minutes=5)
        late = (
            Reconciler(load())
            .check(everything(world), archive=archive_index(world), now=later)
            .mismatches
        )
        assert len([p for p in late if "is not in the audit archive" in p]) == 2

    def test_without_an_archive_nothing_is_checked(self, world):
        submit("p0")
        report = Reconciler(load()).check(everything(world))
        assert report.archived is None
        assert "audit archive:         not checked" in report.lines()


class TestRepairingTheArchive:
    """``make republish --archive``: what the archiver gave up on, written from the table."""

    def test_a_given_up_batch_is_archived_from_its_dead_letter_and_reconciles(self, world):
        from payments.republish import Republisher

        from tests.functional.test_republish import batch_info

        for i in range(30):
            submit(f"p{i}")
        deliver(world)
        records = world.stream_records("archiver")  # the archiver gave up on all of these
        dlq = world.sqs.create_queue(QueueName="payments-audit-archive-dlq-test")["QueueUrl"]
        world.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(batch_info(world, records)))
        before = check(world)
        assert before.archived == 0 and before.archive_pending == len(records)
        repair = Republisher(
            world.env[env.AUDIT_LOG_TABLE],
            None,
            archive_bucket=world.env[env.AUDIT_ARCHIVE_BUCKET],
        )
        report = repair.drain_dead_letters(dlq)
        assert (report.messages, report.deleted, report.kept) == (1, 1, [])
        assert report.result.published == len(records) == 90
        after = check(world)
        assert after.mismatches == [] and after.archived == 90 and after.archive_pending == 0
        # Nothing was published: the topic's subscriber got no events from the repair.
        assert world.receive_all(world.events_queue_url) == []
        # A second run (by entity) writes the same object again: S3 refuses it, nothing new.
        versions = len(objects(world))
        repair.deliver(repair.entries_between("2000-01-01T00:00:00.000Z", "9999"))
        repair.deliver(repair.entries_between("2000-01-01T00:00:00.000Z", "9999"))
        assert len(objects(world)) == versions + 1
        assert check(world).mismatches == []
