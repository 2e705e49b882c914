"""``make erase``: one customer's personal data goes from payments and uploads; amounts, statuses
and the audit trail stay; the erasure is audited and published (moto)."""

from __future__ import annotations

import json

import pytest
from payments.batch import Batches
from payments.config import load
from payments.erasure import Eraser, customer_digest
from payments.repository import PAYER_FIELDS
from payments.service import Payments
from payments.validation import validate_payment

from tests.functional.batch_driver import process_chunks
from tests.functional.test_outbox import deliver, register
from tests.scripts import script

TARGET = "cust-target"


def settle(world) -> None:
    """Every queued payment processed, as the event source mapping would: a message goes once the
    function took it (none is left in flight past its visibility timeout and handed out twice).
    Called every few hundred messages: moto's ReceiveMessage is quadratic in the queue's depth."""
    while messages := world.receive_all():
        assert deliver(world, messages) == {"batchItemFailures": []}


def quiet(world) -> None:
    """The audit log's stream read past what the set-up wrote, unpublished: the tests look at
    the erasure's own event, and moto's SNS takes tens of milliseconds a message (it signs each
    one), minutes for the set-up's four thousand."""
    world.stream_records()


def customer(i: int) -> str:
    return TARGET if i % 4 == 0 else f"cust-{i % 7}"


def csv_file(prefix: str, rows: int, *, target: bool) -> bytes:
    lines = ["payment_id,amount,currency,customer_id,description"]
    for i in range(rows):
        who = customer(i) if target else f"cust-{i % 7}"
        lines.append(f"{prefix}-{i},{i % 50 + 1}.10,EUR,{who},invoice {i} for {who}")
    return ("\n".join(lines) + "\n").encode()


def batch(world, batch_id: str, body: bytes, sequencer: str, *, finish: bool = True) -> None:
    state = register(world, batch_id, body, sequencer)
    batches = Batches(load())
    done = process_chunks(batches, state)
    if finish:
        batches.finalize(done)


@pytest.fixture
def busy(world):
    """200 API payments and three files of 300 rows (two hold the target's rows, one of them
    uploaded twice), all final; the outbox drained."""
    for i in range(200):
        body = {"payment_id": f"api-{i}", "amount": "9.99", "currency": "USD"}
        body |= {"customer_id": customer(i), "description": f"order {i}", "metadata": {"n": str(i)}}
        Payments(load()).submit(validate_payment(body))
        if i % 50 == 49:
            settle(world)
    batch(world, "b1", csv_file("b1", 300, target=True), "0A")
    settle(world)
    batch(world, "b2", csv_file("b2", 300, target=True), "0B")
    settle(world)
    batch(world, "b2", csv_file("b2", 300, target=True), "0C")  # a re-upload: a second version
    settle(world)
    batch(world, "b3", csv_file("b3", 300, target=False), "0D")
    settle(world)
    quiet(world)
    return world


def versions(world, key: str) -> list[dict]:
    return [
        v
        for v in world.s3.list_object_versions(Bucket=world.bucket, Prefix=key).get("Versions", [])
        if v["Key"] == key
    ]


def test_the_customers_fields_and_files_go_and_nothing_else_changes(busy):
    world = busy
    before = {p["payment_id"]: p for p in world.payments()}
    audit_before = world.audit()
    targets = {pid for pid, p in before.items() if p.get("customer_id") == TARGET}
    assert len(targets) == 50 + 75 + 75

    result = Eraser(load()).erase(TARGET)

    assert sorted(result.erased) == sorted(targets) and result.batch_ids == ["b1", "b2"]
    assert result.uploads_deleted == 3
    after = {p["payment_id"]: p for p in world.payments()}
    assert set(after) == set(before)
    for pid, payment in after.items():
        if pid in targets:
            assert not set(PAYER_FIELDS) & set(payment), pid
            kept = {
                k: v for k, v in before[pid].items() if k not in (*PAYER_FIELDS, "minimise_shard")
            }
            assert payment == kept
        else:
            assert payment == before[pid]
    assert versions(world, "incoming/b1.csv") == versions(world, "incoming/b2.csv") == []
    assert len(versions(world, "incoming/b3.csv")) == 1
    # Reports and the audit trail never held the customer's fields: nothing names it anywhere.
    for item in world.s3.list_objects_v2(Bucket=world.bucket, Prefix="reports/")["Contents"]:
        body = world.s3.get_object(Bucket=world.bucket, Key=item["Key"])["Body"].read().decode()
        assert TARGET not in body
    audit_after = world.audit()
    assert TARGET not in json.dumps(audit_after, default=str)
    (entry,) = [e for e in audit_after if e not in audit_before]
    assert entry["entity_id"] == f"ERASURE#{customer_digest(TARGET)}"
    assert entry["payments"] == 200 and entry["uploads_deleted"] == 3

    world.drain_outbox()
    (event,) = [
        json.loads(json.loads(m["Body"])["Message"])
        for m in world.receive_all(world.events_queue_url)
    ]
    assert event["type"] == "customer.erased"
    assert event["customer_digest"] == customer_digest(TARGET) and event["payments"] == 200
    assert sorted(event["payment_ids"]) == sorted(targets)
    assert event["event_id"] == f"ERASURE#{customer_digest(TARGET)}#{entry['sk']}"

    # A second run finds nothing and records nothing.
    audit = world.audit()
    again = Eraser(load()).erase(TARGET)
    assert (again.payment_ids, again.erased, again.uploads_deleted, again.audit_sk) == (
        [],
        [],
        0,
        None,
    )
    assert world.audit() == audit


def test_a_batch_still_running_refuses_the_whole_erasure(world):
    for i in range(20):
        body = {
            "payment_id": f"api-{i}",
            "amount": "1.00",
            "currency": "USD",
            "customer_id": TARGET,
        }
        Payments(load()).submit(validate_payment(body))
    batch(world, "open", csv_file("open", 40, target=True), "0A", finish=False)
    before = world.payments()
    result = Eraser(load()).erase(TARGET)
    assert result.refused and result.running == ["open"] and result.erased == []
    assert world.payments() == before
    assert len(versions(world, "incoming/open.csv")) == 1
    assert not [e for e in world.audit() if e["entity_id"].startswith("ERASURE#")]


def test_the_script_dry_run_changes_nothing_then_it_erases_and_says_what_it_did(busy, capsys):
    before = busy.payments()
    assert script("erase").main(["--customer", TARGET, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "payments found:        200" in out and "DRY RUN" in out and TARGET not in out
    assert busy.payments() == before
    with pytest.raises(SystemExit) as refused:
        script("erase").main(["--customer", "no spaces allowed"])
    assert refused.value.code == 2
    assert "--customer must be 1-128 characters" in capsys.readouterr().err

    assert script("erase").main(["--customer", TARGET]) == 0
    out = capsys.readouterr().out
    assert "payments erased:       200" in out and "upload versions gone:  3" in out
    assert TARGET not in out
    assert not [p for p in busy.payments() if p.get("customer_id") == TARGET]


def test_a_customer_id_is_each_clients_own_and_only_that_clients_is_erased(world):
    """acme's cust-1 and the default client's cust-1 are two people: erasing acme's leaves the
    other's payment, and the event names acme."""
    from payments.clients import Client

    body = {"payment_id": "order-1", "amount": "5", "currency": "EUR", "customer_id": "cust-1"}
    for client in (Client("default"), Client("acme")):
        Payments(load()).submit(validate_payment(body), client=client)
    settle(world)
    done = Eraser(load()).erase("cust-1", "acme")
    assert done.erased == ["acme.order-1"]
    stored = {p["payment_id"]: p for p in world.payments()}
    assert "customer_id" not in stored["acme.order-1"]
    assert stored["order-1"]["customer_id"] == "cust-1"
    assert done.customer_digest == customer_digest("cust-1", "acme") != customer_digest("cust-1")
    [erased] = [e for e in world.events() if e["type"] == "customer.erased"]
    assert (erased["client_id"], erased["payment_ids"]) == ("acme", ["acme.order-1"])
