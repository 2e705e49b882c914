"""CSV batches through S3: S3 event -> trigger -> Step Functions -> tasks -> queue -> processor."""

from __future__ import annotations

import json
import time
import uuid

from localcloud.client import LocalCloud, wait_for

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
        cloud.upload_batch(
            batch_id,
            csv(
                "CURRENCY,amount,Payment_Id,note",
                f"USD,10.00,{p}1,good",
                f"JPY,500,{p}2,good",
                f"USD,1e2,{p}3,exponent",
                f"ABC,1.00,{p}4,unknown currency",
                f"USD,10.00,{p}1,duplicate in file",
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
