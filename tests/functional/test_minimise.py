"""Payer-data minimisation: the sweeper removes a final payment's payer fields once the profile's
payer_data_days are over, from the sparse minimise-index (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from payments.batch import Batches
from payments.config import load
from payments.repository import PAYER_FIELDS
from payments.service import Payments
from payments.sweep import MAX_PER_SHARD, Sweeper
from payments.validation import validate_payment

from tests.functional.batch_driver import process_chunks
from tests.functional.test_outbox import deliver, register

PAYER = {"customer_id": "cust-7", "description": "rent", "metadata": {"flat": "4b"}}


def submit(pid: str, **fields) -> None:
    body = {"payment_id": pid, "amount": "12.30", "currency": "EUR", **fields}
    Payments(load()).submit(validate_payment(body))


def settle(world) -> None:
    """Every queued payment processed, as the event source mapping would: a message goes once the
    function took it (none is left in flight past its visibility timeout and handed out twice)."""
    while messages := world.receive_all():
        assert deliver(world, messages) == {"batchItemFailures": []}


def sweep(days_later: float):
    config = replace(load(), payer_data_days=30)
    return Sweeper(config).run(now=datetime.now(UTC) + timedelta(days=days_later))


def by_id(world) -> dict[str, dict]:
    return {p["payment_id"]: p for p in world.payments()}


def test_final_payments_lose_their_payer_fields_after_the_days_and_keep_everything_else(world):
    for i in range(40):
        submit(f"p{i}", **PAYER)
    submit("over", amount="2000000.00", **PAYER)  # FAILED: final too
    submit("plain")  # no payer fields: never in the index
    settle(world)
    before = by_id(world)
    assert all(p["status"] in ("COMPLETED", "FAILED") for p in before.values())
    assert "minimise_shard" not in before["plain"] and "final_at" not in before["plain"]

    assert sweep(29).minimised == 0
    assert by_id(world) == before
    audit_before = world.audit()

    report = sweep(31)
    assert report.minimised == 41
    after = by_id(world)
    for pid, payment in after.items():
        assert not set(PAYER_FIELDS) & set(payment), pid
        assert "minimise_shard" not in payment
        kept = {k: v for k, v in before[pid].items() if k not in (*PAYER_FIELDS, "minimise_shard")}
        assert payment == kept
    assert after["over"]["status"] == "FAILED" and after["p0"]["amount"] == Decimal("12.3")
    assert world.audit() == audit_before
    assert sweep(60).minimised == 0  # nothing twice


def test_a_payment_not_yet_final_keeps_its_fields(world):
    submit("waiting", **PAYER)  # RECEIVED, never processed
    assert sweep(400).minimised == 0
    assert by_id(world)["waiting"]["customer_id"] == "cust-7"


def test_batch_rows_are_minimised_too(world):
    body = "payment_id,amount,currency,customer_id,description\n" + "".join(
        f"r{i},1.00,USD,cust-{i % 3},row {i}\n" for i in range(120)
    )
    state = register(world, "b1", body.encode(), "0A")
    batches = Batches(load())
    batches.finalize(process_chunks(batches, state))
    settle(world)
    assert sweep(31).minimised == 120
    assert not any("customer_id" in p or "description" in p for p in world.payments())


def test_one_run_takes_at_most_its_bound_per_shard(world, monkeypatch):
    import payments.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "MAX_PER_SHARD", 1)
    for i in range(40):
        submit(f"p{i}", **PAYER)
    settle(world)
    first = sweep(31).minimised
    assert 0 < first <= 16
    total = first
    while (more := sweep(31).minimised) > 0:
        total += more
    assert total == 40
    assert MAX_PER_SHARD == 500
