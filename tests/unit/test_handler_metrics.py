"""Business figures leave the handlers as embedded metrics (Powertools Metrics), not log lines."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from handlers import batch_tasks, processor


@pytest.fixture(autouse=True)
def _fresh_metrics():
    processor.metrics.clear_metrics()
    batch_tasks.metrics.clear_metrics()
    yield
    processor.metrics.clear_metrics()
    batch_tasks.metrics.clear_metrics()


def _record(payment_id: str) -> SQSRecord:
    return SQSRecord({"messageId": "m-1", "body": json.dumps({"payment_id": payment_id})})


@pytest.mark.parametrize(
    ("status", "metric"), [("COMPLETED", "PaymentsCompleted"), ("FAILED", "PaymentsFailed")]
)
def test_a_payment_ending_final_counts_once(monkeypatch, status, metric):
    monkeypatch.setattr(processor, "settings", lambda: None)
    monkeypatch.setattr(
        processor, "Payments", lambda _: type("P", (), {"process": lambda s, i: status})()
    )
    assert processor.record_handler(_record("pay_1")) == status
    assert processor.metrics.metric_set[metric]["Value"] == [1.0]
    other = ({"PaymentsCompleted", "PaymentsFailed"} - {metric}).pop()
    assert other not in processor.metrics.metric_set


def test_a_payment_not_yet_final_counts_nothing(monkeypatch):
    monkeypatch.setattr(processor, "settings", lambda: None)
    monkeypatch.setattr(
        processor, "Payments", lambda _: type("P", (), {"process": lambda s, i: "PROCESSING"})()
    )
    processor.record_handler(_record("pay_2"))
    assert processor.metrics.metric_set == {}


def test_each_chunk_adds_its_rows(monkeypatch):
    counts = {"total_rows": 7, "accepted": 4, "rejected": 2, "duplicates": 1}

    class Batches:
        def __init__(self, _config, **_clients):
            pass

        def process_chunk(self, state):
            return {"index": state["chunk"]["index"], "superseded": False, "counts": counts}

    monkeypatch.setattr(batch_tasks, "Batches", Batches)
    monkeypatch.setattr(
        batch_tasks, "settings", lambda: type("S", (), {"require": lambda s, *a: s})()
    )
    event = {"task": "process_chunk", "state": {"batch_id": "b-1", "chunk": {"index": 0}}}
    batch_tasks.handler.__wrapped__.__wrapped__(event, None)
    emitted = {
        name: batch_tasks.metrics.metric_set[name]["Value"]
        for name in batch_tasks.ROW_METRICS.values()
    }
    assert emitted == {
        "BatchRows": [7.0],
        "BatchRowsAccepted": [4.0],
        "BatchRowsRejected": [2.0],
        "BatchRowsDuplicate": [1.0],
    }
