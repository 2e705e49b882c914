"""The sweeper: finds work a fault left behind, from the sparse indexes, never a scan.

- A payment is *stuck* when it is not final and has not changed (nor been swept) for
  ``stuck_after_seconds`` (its queue message was lost to the DLQ, or a batch stored it and then
  failed to queue it). It is queued again and its ``pending_at`` clock restarts, so a payment
  still waiting in a backlog is queued once per threshold, never once per run; the processor is
  idempotent, so a payment that was merely slow is not harmed.
- A batch run still ``PROCESSING`` past the workflow's timeout has lost its execution (a
  timed-out execution runs no failure path). It is marked ``FAILED`` / ``TIMED_OUT`` with its
  audit entry, so ``batch.failed`` goes out through the outbox.
- A final payment that still holds payer fields (``customer_id``, ``description``,
  ``metadata``) ``payer_data_days`` after it became final has them removed (``minimise-index``);
  amounts, statuses, history and the audit trail stay. Up to ``MAX_PER_SHARD`` per shard a run,
  so a backlog (the first run after the setting is turned on) is worked off over several runs.

Each run reports what it found; the alarm fires when two runs in a row find work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from payments import aws
from payments.batch import TIMED_OUT, Batches
from payments.config import Config
from payments.errors import TransientError
from payments.repository import PENDING_SHARDS, Repository

# Bounds one run: a fault that stranded a million payments is drained over several runs rather
# than by one run that outlives its timeout. (16 shards x 500 = 8,000 payments a run.)
MAX_PER_SHARD = 500
SQS_BATCH = 10
TIMED_OUT_REASON = (
    "The batch did not finish within the workflow's time limit; upload the file again to retry."
)


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    timed_out_batches: list[str] = field(default_factory=list)
    minimised: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stuck_payments": len(self.requeued),
            "timed_out_batches": len(self.timed_out_batches),
            "minimised_payments": self.minimised,
            "payment_ids": self.requeued[:50],
            "batch_ids": self.timed_out_batches,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Sweeper:
    def __init__(self, config: Config, *, repo: Repository | None = None, sqs: Any = None) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        self._sqs = sqs

    def run(self, now: datetime | None = None) -> SweepReport:
        now = now or datetime.now(UTC)
        report = SweepReport()
        cutoff = _iso(now - timedelta(seconds=self.config.stuck_after_seconds))
        for shard in range(PENDING_SHARDS):
            found = self.repo.pending_payments(str(shard), cutoff, limit=MAX_PER_SHARD)
            ids = [item["payment_id"] for item in found]
            self._requeue(ids)
            swept = _iso(now)
            report.requeued += [pid for pid in ids if self.repo.mark_swept(pid, swept)]
        started_before = _iso(now - timedelta(seconds=self.config.workflow_timeout_seconds))
        batches = Batches(self.config, repo=self.repo)
        for item in self.repo.running_batches(started_before):
            batch_id, run = str(item.get("batch_id")), str(item.get("run"))
            if batches.fail(batch_id, run, TIMED_OUT, TIMED_OUT_REASON):
                report.timed_out_batches.append(batch_id)
        if self.config.payer_data_days is not None:
            final_before = _iso(now - timedelta(days=self.config.payer_data_days))
            for shard in range(PENDING_SHARDS):
                due = self.repo.payments_to_minimise(str(shard), final_before, limit=MAX_PER_SHARD)
                report.minimised += sum(self.repo.minimise(i["payment_id"]) for i in due)
        return report

    def _requeue(self, payment_ids: list[str]) -> None:
        sqs = self._sqs or aws.client("sqs")
        for start in range(0, len(payment_ids), SQS_BATCH):
            entries = [
                {"Id": str(i), "MessageBody": json.dumps({"payment_id": pid})}
                for i, pid in enumerate(payment_ids[start : start + SQS_BATCH])
            ]
            response = sqs.send_message_batch(
                QueueUrl=self.config.processing_queue_url, Entries=entries
            )
            if response.get("Failed"):
                # The next run finds these again; say so now rather than pretend.
                raise TransientError(f"{len(response['Failed'])} payment(s) could not be queued")
