"""CSV batches through S3: S3 event -> trigger -> Step Functions -> tasks -> queue -> processor."""

from __future__ import annotations

import json
import time
import uuid

from localcloud.client import LocalCloud, wait_for
from tests.e2e.personal import personal

FINAL = {"COMPLETED", "FAILED"}


def batch_result(cloud: LocalCloud, batch_id: str, *, after: str = "") -> dict:
    """The batch once final (and, with ``after``, finished later than that time)."""

    def check() -> dict | None:
        response = cloud.request("GET", f"/batches/{batch_id}")
        body = response.json() if response.status == 200 else None
        if (
            body
            and body["status"] in FINAL
            and (not after or (body.get("finished_at") or "") > after)
        ):
            return body
        return None

    return wait_for(check, timeout=90, what=f"batch {batch_id} final")


def payment(cloud: LocalCloud, payment_id: str) -> dict:
    def check() -> dict | None:
        body = cloud.request("GET", f"/payments/{payment_id}").json()
        return body if body.get("status") in FINAL else None

    return wait_for(check, timeout=60, what=f"payment {payment_id} final")


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


class TestCsvBatch:
    def test_good_bad_and_duplicate_rows_are_each_counted_once(self, cloud: LocalCloud) -> None:
        batch_id = f"mixed-{uuid.uuid4().hex[:8]}"
        p = f"{batch_id}-p"
        customer = personal("customer_id")
        cloud.upload_batch(
            batch_id,
            csv(
                "CURRENCY,amount,Payment_Id,note,customer_id",
                f"USD,10.00,{p}1,good,{customer}",
                f"JPY,500,{p}2,good",
                f"USD,1e2,{p}3,exponent",
                f"ABC,1.00,{p}4,unknown currency",
                f"USD,10.00,{p}1,duplicate in file,{customer}",
                "",
                f"EUR,2000000,{p}5,over the limit",
            ),
        )
        result = batch_result(cloud, batch_id)
        assert result["status"] == "COMPLETED"
        assert (result["total_rows"], result["accepted"], result["rejected"]) == (6, 3, 2)
        assert result["duplicates"] == 1
        assert sorted(row["line"] for row in result["rejected_rows"]) == [4, 5]
        assert {row["payment_id"] for row in result["rejected_rows"]} == {f"{p}3", f"{p}4"}
        assert payment(cloud, f"{p}1")["status"] == "COMPLETED"
        assert payment(cloud, f"{p}1")["source"] == "batch"
        assert payment(cloud, f"{p}1")["batch_id"] == batch_id
        assert payment(cloud, f"{p}2")["status"] == "COMPLETED"
        limited = payment(cloud, f"{p}5")
        assert (limited["status"], limited["reason"]) == ("FAILED", "LIMIT_EXCEEDED")
        report = cloud.client("s3").get_object(Bucket=cloud.batch_bucket, Key=result["report_key"])
        assert json.loads(report["Body"].read())["batch_id"] == batch_id

    def test_reupload_processes_the_new_version_and_counts_stored_rows_as_duplicates(
        self, cloud: LocalCloud
    ) -> None:
        batch_id = f"again-{uuid.uuid4().hex[:8]}"
        p = f"{batch_id}-p"
        cloud.upload_batch(batch_id, csv("payment_id,amount,currency", f"{p}1,1.00,USD"))
        first = batch_result(cloud, batch_id)
        assert first["accepted"] == 1
        time.sleep(0.01)
        cloud.upload_batch(
            batch_id, csv("payment_id,amount,currency", f"{p}1,1.00,USD", f"{p}2,2.00,USD")
        )
        second = batch_result(cloud, batch_id, after=first["finished_at"])
        assert second["version_id"] != first["version_id"]
        assert (second["total_rows"], second["accepted"], second["duplicates"]) == (2, 1, 1)
        assert payment(cloud, f"{p}2")["status"] == "COMPLETED"

    def test_file_without_the_required_header_fails_as_a_whole(self, cloud: LocalCloud) -> None:
        batch_id = f"noheader-{uuid.uuid4().hex[:8]}"
        cloud.upload_batch(batch_id, csv("id,value", "a,1"))
        result = batch_result(cloud, batch_id)
        assert result["status"] == "FAILED"
        assert result["reason"]

    def test_objects_outside_incoming_are_ignored(self, cloud: LocalCloud) -> None:
        batch_id = f"ignored-{uuid.uuid4().hex[:8]}"
        cloud.client("s3").put_object(
            Bucket=cloud.batch_bucket,
            Key=f"elsewhere/{batch_id}.csv",
            Body=csv("payment_id,amount,currency", "x1,1,USD"),
        )
        time.sleep(3)
        assert cloud.request("GET", f"/batches/{batch_id}").status == 404


LARGE_ROWS = 20_000
# Deliberate defects of the large file (both primes, so they never fall on the same row).
LARGE_REJECT_EVERY = 997
LARGE_DUPLICATE_EVERY = 1009
# What one file of that size may take on the local cloud (2-core CI runner, one file at a time).
LARGE_COMPLETED_WITHIN = 300
LARGE_FINAL_WITHIN = 900


def large_file(batch_id: str) -> tuple[bytes, list[int], int]:
    """``LARGE_ROWS`` data rows: a negative amount every ``LARGE_REJECT_EVERY``-th row, a repeat
    of the row before every ``LARGE_DUPLICATE_EVERY``-th. Returns the file, the lines of the
    rejected rows (the header is line 1) and the number of repeated rows."""
    lines = ["payment_id,amount,currency"]
    rejected_lines, duplicates = [], 0
    for row in range(1, LARGE_ROWS + 1):
        if row % LARGE_DUPLICATE_EVERY == 0:
            lines.append(lines[-1])
            duplicates += 1
        elif row % LARGE_REJECT_EVERY == 0:
            lines.append(f"{batch_id}-{row},-1.00,USD")
            rejected_lines.append(row + 1)
        else:
            lines.append(f"{batch_id}-{row},{row % 9_000 + 1}.{row % 100:02d},USD")
    return ("\n".join(lines) + "\n").encode(), rejected_lines, duplicates


def batch_payments(cloud: LocalCloud, batch_id: str, *, open_only: bool = False) -> int:
    """How many payments the batch stored (``open_only``: not yet COMPLETED or FAILED), from the
    payments table's batch index."""
    kwargs: dict = {
        "TableName": cloud.stack["payments_table_name"],
        "IndexName": "batch_id-index",
        "KeyConditionExpression": "batch_id = :b",
        "ExpressionAttributeValues": {":b": {"S": batch_id}},
        "Select": "COUNT",
    }
    if open_only:
        kwargs["FilterExpression"] = "NOT #s IN (:c, :f)"
        kwargs["ExpressionAttributeNames"] = {"#s": "status"}
        kwargs["ExpressionAttributeValues"] |= {":c": {"S": "COMPLETED"}, ":f": {"S": "FAILED"}}
    dynamodb = cloud.client("dynamodb")
    count = 0
    while True:
        page = dynamodb.query(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def processing_queue_depth(cloud: LocalCloud) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=cloud.stack["processing_queue_url"], AttributeNames=names
    )["Attributes"]
    return sum(int(attributes[name]) for name in names)


class TestLargeBatch:
    def test_a_20000_row_file_counts_every_row_once_and_every_payment_ends_final(
        self, cloud: LocalCloud
    ) -> None:
        batch_id = f"large-{uuid.uuid4().hex[:8]}"
        body, rejected_lines, duplicates = large_file(batch_id)
        accepted = LARGE_ROWS - len(rejected_lines) - duplicates
        cloud.upload_batch(batch_id, body)

        def finished() -> dict | None:
            response = cloud.request("GET", f"/batches/{batch_id}")
            view = response.json() if response.status == 200 else None
            return view if view and view["status"] in FINAL else None

        result = wait_for(
            finished, timeout=LARGE_COMPLETED_WITHIN, interval=2, what=f"batch {batch_id} final"
        )
        assert result["status"] == "COMPLETED"
        counts = (result["total_rows"], result["accepted"], result["rejected"])
        assert counts == (LARGE_ROWS, accepted, len(rejected_lines))
        assert result["duplicates"] == duplicates
        assert sorted(row["line"] for row in result["rejected_rows"]) == rejected_lines
        assert {row["payment_id"] for row in result["rejected_rows"]} == {
            f"{batch_id}-{line - 1}" for line in rejected_lines
        }
        # The processing queue drains first (a cheap poll: an index query reads the whole table
        # on the local cloud), then no payment of the batch may be left open.
        wait_for(
            lambda: processing_queue_depth(cloud) == 0,
            timeout=LARGE_FINAL_WITHIN,
            interval=5,
            what=f"the processing queue drained of {batch_id}",
        )
        wait_for(
            lambda: batch_payments(cloud, batch_id, open_only=True) == 0,
            timeout=60,
            interval=5,
            what=f"every payment of {batch_id} final",
        )
        assert batch_payments(cloud, batch_id) == accepted  # each accepted row stored once
        last = payment(cloud, f"{batch_id}-{LARGE_ROWS}")
        assert (last["status"], last["batch_id"]) == ("COMPLETED", batch_id)
