"""``make republish --dlq`` on the deployed stack: a stream batch the publisher gave up on is
published from the audit log, the outbox dead-letter queue ends empty and the books reconcile.

The publisher is made to fail for real (its topic variable names a topic that does not exist)
and the stream mapping to give up at once (no retries), then both are put back as deployed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from localcloud.client import LocalCloud, wait_for
from tests.e2e.test_batches import payment
from tests.e2e.test_outbox import _function_name, _published
from tests.scripts import script


def _outbox_dlq(cloud: LocalCloud, mapping: dict) -> str:
    arn = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    return cloud.client("sqs").get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]


def _messages(cloud: LocalCloud, queue_url: str) -> int:
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def settled(count, *, quiet_seconds: float = 5.0, timeout: float = 60.0) -> int:
    """Wait until ``count()`` stays the same for ``quiet_seconds``."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return now
    raise AssertionError(f"still changing after {timeout} s: {last}")


@contextmanager
def giving_up(cloud: LocalCloud, key: str, variable: str, broken: str) -> Iterator[dict]:
    """Inside the block the stream reader ``key`` (publisher, archiver) fails on every batch
    (its ``variable`` names ``broken``, a resource that does not exist) and its mapping sends
    each failed batch's description to its on-failure queue at once; afterwards both are as
    deployed."""
    lam = cloud.client("lambda")
    function = _function_name(cloud, key)
    table = cloud.stack["audit_log_table_name"]
    stream = cloud.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    (mapping,) = [
        m
        for m in lam.list_event_source_mappings(EventSourceArn=stream)["EventSourceMappings"]
        if m["FunctionArn"].rsplit(":", 1)[-1] == function or m["FunctionArn"].endswith(function)
    ]
    variables = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    changed = {**variables, variable: broken}
    lam.update_function_configuration(FunctionName=function, Environment={"Variables": changed})
    lam.update_event_source_mapping(UUID=mapping["UUID"], MaximumRetryAttempts=0)
    try:
        yield mapping
    finally:
        lam.update_event_source_mapping(
            UUID=mapping["UUID"], MaximumRetryAttempts=mapping["MaximumRetryAttempts"]
        )
        lam.update_function_configuration(
            FunctionName=function, Environment={"Variables": variables}
        )


def publisher_giving_up(cloud: LocalCloud):
    topic = cloud.stack["payment_events_topic_arn"]
    return giving_up(cloud, "publisher", "PAYMENT_EVENTS_TOPIC_ARN", topic + "-gone")


def archiver_giving_up(cloud: LocalCloud):
    bucket = cloud.stack["audit_archive_bucket_name"]
    return giving_up(cloud, "archiver", "AUDIT_ARCHIVE_BUCKET", bucket + "-gone")


class TestRepublish:
    def test_the_outbox_dead_letter_queue_is_emptied_by_republish_and_the_books_reconcile(
        self, cloud: LocalCloud, capsys
    ) -> None:
        since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        run = uuid.uuid4().hex[:8]
        ids = [f"rp-{run}-{i}" for i in range(3)]
        with publisher_giving_up(cloud) as mapping:
            dlq = _outbox_dlq(cloud, mapping)
            before = _messages(cloud, dlq)
            for pid in ids:
                body = {"payment_id": pid, "amount": "3.10", "currency": "USD"}
                assert cloud.request("POST", "/payments", body=body).status == 202
            for pid in ids:
                payment(cloud, pid)  # final: every change is in the audit log
            wait_for(lambda: _messages(cloud, dlq) > before, timeout=60, what="a dead letter")
            settled(lambda: _messages(cloud, dlq))  # the last records' batch given up on too
        ours = {f"{pid}#{v}" for pid in ids for v in (1, 2, 3)}
        assert ours.isdisjoint(e["event_id"] for e in _published(cloud))

        assert script("republish").main(["--dlq"]) == 0, capsys.readouterr().out
        assert _messages(cloud, dlq) == 0
        published = [e for e in _published(cloud) if run in json.dumps(e)]
        assert {e["event_id"] for e in published} == ours
        assert {e["version"] for e in published} == {1, 2, 3}

        code = script("reconcile").main(["--since", since])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "mismatches:            0" in out

    def test_the_archive_dead_letter_queue_is_emptied_by_republish_archive(
        self, cloud: LocalCloud, capsys
    ) -> None:
        from tests.e2e.test_outbox import _archived

        since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        run = uuid.uuid4().hex[:8]
        ids = [f"ra-{run}-{i}" for i in range(3)]
        with archiver_giving_up(cloud) as mapping:
            dlq = _outbox_dlq(cloud, mapping)
            before = _messages(cloud, dlq)
            for pid in ids:
                body = {"payment_id": pid, "amount": "4.20", "currency": "USD"}
                assert cloud.request("POST", "/payments", body=body).status == 202
            for pid in ids:
                payment(cloud, pid)
            wait_for(lambda: _messages(cloud, dlq) > before, timeout=60, what="a dead letter")
            settled(lambda: _messages(cloud, dlq))
        assert not [k for k in _archived(cloud) if run in k[0]]
        # The events went out regardless: the archive and the outbox read the stream apart.
        wait_for(
            lambda: len([e for e in _published(cloud) if run in json.dumps(e)]) >= 9 or None,
            timeout=60,
            what="the events",
        )

        assert script("republish").main(["--archive", "--dlq"]) == 0, capsys.readouterr().out
        assert _messages(cloud, dlq) == 0
        assert len([k for k in _archived(cloud) if run in k[0]]) == 9
        code = script("reconcile").main(["--since", since])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "mismatches:            0" in out
