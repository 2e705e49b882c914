"""The outbox, the sweeper and reconcile on the deployed stack (the local cloud runs the stream
mapping and the schedule like Lambda and EventBridge Scheduler would)."""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import UTC, datetime

from localcloud.client import LocalCloud, wait_for
from localcloud.config import REPO_ROOT
from tests.e2e.test_batches import batch_result, csv, payment


def _reconcile_script():
    spec = importlib.util.spec_from_file_location(
        "reconcile_script", REPO_ROOT / "scripts" / "reconcile.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _archived(cloud: LocalCloud) -> set[tuple[str, str]]:
    """(entity_id, sk) of every entry in the deployed audit archive, today and yesterday."""
    from datetime import timedelta

    from payments import archive

    today = datetime.now(UTC).date()
    index = archive.read(
        cloud.client("s3"),
        cloud.stack["audit_archive_bucket_name"],
        today - timedelta(days=1),
        today,
    )
    return set(index.entries)


def _published(cloud: LocalCloud) -> list[dict]:
    queue = cloud.stack["payment_events_subscriber_queue_url"]
    return _reconcile_script().read_events(cloud.client("sqs"), queue, empty_polls=2)


class TestOutbox:
    def test_every_change_is_published_once_and_the_books_reconcile(
        self, cloud: LocalCloud, capsys
    ) -> None:
        since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        run = uuid.uuid4().hex[:8]
        ids = [f"ob-{run}-{i}" for i in range(3)]
        for pid in ids:
            body = {"payment_id": pid, "amount": "12.50", "currency": "EUR"}
            assert cloud.request("POST", "/payments", body=body).status == 202
        batch_id = f"ob-{run}"
        cloud.upload_batch(
            batch_id,
            csv("payment_id,amount,currency", f"{batch_id}-a,1.00,USD", f"{batch_id}-b,-1,USD"),
        )
        assert batch_result(cloud, batch_id)["accepted"] == 1
        for pid in [*ids, f"{batch_id}-a"]:
            payment(cloud, pid)

        def all_events_out() -> list[dict] | None:
            events = [e for e in _published(cloud) if run in json.dumps(e)]
            # 4 payments x (RECEIVED, PROCESSING, COMPLETED) + batch.completed
            return events if len({e["event_id"] for e in events}) >= 13 else None

        events = wait_for(all_events_out, timeout=60, what="every event published")
        assert {e["event_id"] for e in events} >= {f"{pid}#{v}" for pid in ids for v in (1, 2, 3)}
        assert any(e["type"] == "batch.completed" and e["batch_id"] == batch_id for e in events)
        wait_for(
            lambda: len([k for k in _archived(cloud) if run in k[0]]) >= 13 or None,
            timeout=60,
            what="every audit entry archived",
        )

        code = _reconcile_script().main(["--since", since, "--batch", batch_id])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "mismatches:            0" in out
        (archive_line,) = [line for line in out.splitlines() if line.startswith("audit archive:")]
        assert "objects agree" in archive_line and "too recent" not in archive_line, out

    def test_the_archive_locks_what_it_holds(self, cloud: LocalCloud) -> None:
        s3 = cloud.client("s3")
        bucket = cloud.stack["audit_archive_bucket_name"]
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        retention = lock["Rule"]["DefaultRetention"]
        assert (retention["Mode"], retention["Days"]) == ("GOVERNANCE", 1)
        pid = f"ob-lock-{uuid.uuid4().hex[:8]}"
        body = {"payment_id": pid, "amount": "3.00", "currency": "EUR"}
        assert cloud.request("POST", "/payments", body=body).status == 202
        wait_for(
            lambda: any(pid in k[0] for k in _archived(cloud)) or None,
            timeout=60,
            what="the payment's entry archived",
        )
        version = next(
            v
            for v in s3.list_object_versions(Bucket=bucket, Prefix="audit/")["Versions"]
            if pid in s3.get_object(Bucket=bucket, Key=v["Key"])["Body"].read().decode()
        )
        head = s3.head_object(Bucket=bucket, Key=version["Key"])
        assert head["ObjectLockMode"] == "GOVERNANCE"
        try:
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        except s3.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied"
        else:
            raise AssertionError("a locked archive object was deleted")

    def test_the_deployed_sweeper_runs_against_the_deployed_indexes(self, cloud: LocalCloud):
        response = cloud.client("lambda").invoke(
            FunctionName=_function_name(cloud, "sweeper"),
            Payload=b"{}",
        )
        assert "FunctionError" not in response, response["Payload"].read()
        report = json.loads(response["Payload"].read())
        assert set(report) >= {"stuck_payments", "timed_out_batches"}


def _function_name(cloud: LocalCloud, key: str) -> str:
    names = [
        f["FunctionName"]
        for f in cloud.client("lambda").list_functions()["Functions"]
        if f["FunctionName"].startswith(f"payments-{key}-")
    ]
    assert len(names) == 1, names
    return names[0]
