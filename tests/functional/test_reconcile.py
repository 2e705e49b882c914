"""Reconcile finds nothing when the books agree, and names each kind of disagreement."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from payments import env
from payments.batch import Batches
from payments.config import load
from payments.reconcile import Reconciler
from payments.service import Payments
from payments.validation import validate_payment

from tests.functional.batch_driver import process_chunks
from tests.functional.test_outbox import deliver, register

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("reconcile_script", ROOT / "scripts/reconcile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def submit(payment_id):
    Payments(load()).submit(
        validate_payment({"payment_id": payment_id, "amount": "5", "currency": "EUR"})
    )


def published(world):
    return _script().read_events(world.sqs, world.events_queue_url, wait_seconds=0, empty_polls=1)


def everything(world):
    return Reconciler(load()).payments_created("2000", "9999")


def settle(world):
    for _ in range(5):
        if deliver(world) == {"batchItemFailures": []} and not world.receive_all(delete=False):
            break
    world.drain_outbox()


def test_a_settled_world_reconciles(world):
    for i in range(5):
        submit(f"p{i}")
    state = register(
        world, "b1", b"payment_id,amount,currency\nb1,1,USD\nb2,-1,USD\nb1,1,USD\n", "01"
    )
    batches = Batches(load())
    batches.finalize(process_chunks(batches, state))
    settle(world)
    report = Reconciler(load()).check(everything(world), published=published(world))
    assert report.mismatches == []
    assert (report.payments, report.final, report.batches) == (6, 6, 1)
    assert report.events_expected == 6 * 3 and report.events_seen == 6 * 3 + 1  # + batch.completed
    # Reading the events consumed none of them.
    assert len(published(world)) == report.events_seen


def test_clients_with_the_same_payment_id_reconcile_each_against_its_own_events(world):
    """Events name the client and its own id; reconcile finds each one's payment by both."""
    from payments.clients import Client

    body = {"payment_id": "order-1", "amount": "5", "currency": "EUR"}
    for client in (Client("default"), Client("acme"), Client("globex")):
        Payments(load()).submit(validate_payment(body), client=client)
    settle(world)
    report = Reconciler(load()).check(everything(world), published=published(world))
    assert report.mismatches == []
    assert (report.payments, report.events_expected, report.events_seen) == (3, 9, 9)


def test_an_event_lost_on_the_way_is_named(world):
    submit("p1")
    settle(world)
    events = [e for e in published(world) if e["event_id"] != "p1#2"]
    report = Reconciler(load()).check(everything(world), published=events)
    assert report.mismatches == ["payment p1: audited but never published: ['p1#2']"]


def test_an_event_without_an_audit_entry_is_named(world):
    submit("p1")
    settle(world)
    events = [*published(world), {"event_id": "p1#9", "payment_id": "p1"}]
    report = Reconciler(load()).check(everything(world), published=events)
    assert report.mismatches == ["payment p1: published without an audit entry: ['p1#9']"]


def test_a_payment_left_non_final_past_the_threshold_is_named(world):
    submit("p1")
    world.receive_all()  # its message is lost
    world.drain_outbox()
    later = datetime.now(UTC) + timedelta(seconds=load().stuck_after_seconds + 60)
    report = Reconciler(load()).check(everything(world), published=published(world), now=later)
    assert len(report.mismatches) == 1 and report.mismatches[0].startswith(
        "payment p1: RECEIVED since"
    )


@pytest.mark.tampers_with_audit_log
def test_a_history_that_disagrees_with_the_audit_log_is_named(world):
    submit("p1")
    settle(world)
    world.dynamodb.delete_item(
        TableName=world.env[env.AUDIT_LOG_TABLE],
        Key={"entity_id": {"S": "PAYMENT#p1"}, "sk": {"S": "0002#PROCESSING"}},
    )
    report = Reconciler(load()).check(everything(world), published=None)
    assert report.events_seen is None
    assert [m.split(":")[0] for m in report.mismatches] == ["payment p1"]
    assert "audit steps" in report.mismatches[0]


def test_batch_counters_that_do_not_match_the_stored_rows_are_named(world):
    state = register(world, "b", b"payment_id,amount,currency\nx1,1,USD\nx2,1,USD\n", "01")
    batches = Batches(load())
    batches.finalize(process_chunks(batches, state))
    settle(world)
    world.dynamodb.update_item(
        TableName=world.env[env.PROCESSING_STATUS_TABLE],
        Key={"pk": {"S": "BATCH#b"}, "sk": {"S": "SUMMARY"}},
        UpdateExpression="SET accepted = :a, duplicates = :d",
        ExpressionAttributeValues={":a": {"N": "1"}, ":d": {"N": "1"}},
    )
    report = Reconciler(load()).check([], batch_ids=["b"], published=published(world))
    assert report.mismatches == [
        "batch b: counters (1, 0, 1) but stored rows (2, 0, 0) (accepted, rejected, duplicates)"
    ]


def test_the_cli_exits_non_zero_on_a_mismatch(world, capsys, monkeypatch):
    submit("p1")
    world.receive_all()
    monkeypatch.setenv(env.PAYMENTS_TABLE, world.env[env.PAYMENTS_TABLE])
    code = _script().main(
        ["--events-queue", world.events_queue_url, "--since", "2000-01-01T00:00:00Z"]
    )
    out = capsys.readouterr().out
    assert code == 1 and "MISMATCH" in out and "audited but never published: ['p1#1']" in out
