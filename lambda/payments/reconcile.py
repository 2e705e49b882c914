"""Reconcile: do the payments' histories, the audit trail and the published events agree?

Read-only (``make reconcile``; the e2e and chaos runs end with it). For every payment in scope:

- its ``history`` is a legal path of the lifecycle and ``version == len(history)``;
- the audit log has exactly one status entry per version, with the history's status;
- every audit entry of the payment (status changes, fraud alerts) was published: its
  ``event_id`` is among the events read from a subscriber of ``payment-events``, and no event
  names a change the audit log does not have;
- it is final, or it changed less than ``stuck_after_seconds`` ago.

For every batch run in scope, ``accepted + rejected + duplicates == total_rows``, the counters
match the stored payments and row outcomes of that run, and a finished run has its audit entry
and event.

Given the audit archive's entries for the window (``payments.archive.read``), every audit entry of
a payment or batch in scope made since the window's first day is in the archive with the same
content, the archive holds no entry of theirs that the table lacks, and it recorded no change
(``MODIFY``/``REMOVE``) of one. The result is a list of mismatches; an empty list means the books
agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from payments import archive as audit_archive
from payments import events
from payments.batch import BATCH_COMPLETED, BATCH_FAILED, DUPLICATE, REJECTED
from payments.clients import stored_id_of
from payments.config import Config
from payments.lifecycle import ALLOWED, FINAL_STATUSES, RECEIVED
from payments.repository import Repository, batch_pk, payment_entity, to_int

# The archiver gathers a stream batch for up to 5 s and retries a failed one: an entry younger
# than this that is not archived yet is counted as pending, not as a mismatch.
ARCHIVE_LAG_SECONDS = 120


@dataclass
class Report:
    payments: int = 0
    audit_entries: int = 0
    events_expected: int = 0
    events_seen: int | None = None
    batches: int = 0
    final: int = 0
    archived: int | None = None
    archive_objects: int = 0
    archive_pending: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def lines(self) -> list[str]:
        seen = "not checked" if self.events_seen is None else str(self.events_seen)
        out = [
            f"payments checked:      {self.payments} ({self.final} final)",
            f"audit entries:         {self.audit_entries}",
            f"events expected/seen:  {self.events_expected} / {seen}",
            f"batch runs checked:    {self.batches}",
            "audit archive:         "
            + (
                "not checked"
                if self.archived is None
                else f"{self.archived} entries in {self.archive_objects} objects agree"
                + (
                    f", {self.archive_pending} too recent to be there yet"
                    if self.archive_pending
                    else ""
                )
            ),
            f"mismatches:            {len(self.mismatches)}",
        ]
        out += [f"  - {m}" for m in self.mismatches[:200]]
        if len(self.mismatches) > 200:
            out.append(f"  ... and {len(self.mismatches) - 200} more")
        return out


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Reconciler:
    def __init__(self, config: Config, *, repo: Repository | None = None) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        # The archive of the running check: entity -> sk -> what it holds, and the days read.
        self._archive: tuple[dict[str, dict[str, audit_archive.Archived]], str, str] | None = None

    # -- scope ------------------------------------------------------------------------------
    def payments_of_batch(self, batch_id: str) -> list[dict[str, Any]]:
        return list(self.repo.batch_payments(batch_id))

    def payments_created(self, since: str, until: str) -> list[dict[str, Any]]:
        """Payments created in [since, until): a filtered scan (an operator's read, not a
        request path; the table has no time index and needs none for this)."""
        from payments.repository import read_all

        return read_all(
            self.repo.dynamodb,
            "scan",
            TableName=self.config.payments_table,
            FilterExpression="created_at >= :since AND created_at < :until",
            ExpressionAttributeValues={":since": {"S": since}, ":until": {"S": until}},
            ConsistentRead=True,
        )

    # -- checks -----------------------------------------------------------------------------
    def check(
        self,
        payments: Iterable[Mapping[str, Any]],
        *,
        batch_ids: Iterable[str] = (),
        published: Iterable[Mapping[str, Any]] | None = None,
        archive: audit_archive.ArchiveIndex | None = None,
        now: datetime | None = None,
    ) -> Report:
        now = now or datetime.now(UTC)
        report = Report()
        self._archive = None
        if archive is not None:
            first_day = archive.days[0].isoformat() if archive.days else ""
            recent = _iso(now - timedelta(seconds=ARCHIVE_LAG_SECONDS))
            self._archive = (archive.by_entity(), first_day, recent)
            report.archived, report.archive_objects = 0, archive.objects
        published_ids: dict[str, set[str]] | None = None
        if published is not None:
            published_ids = defaultdict(set)
            count = 0
            for event in published:
                count += 1
                published_ids[_owner(event)].add(str(event.get("event_id")))
            report.events_seen = count
        stuck_before = _iso(now - timedelta(seconds=self.config.stuck_after_seconds))
        batches = set(batch_ids)
        for payment in payments:
            report.payments += 1
            if payment.get("batch_id"):
                batches.add(str(payment["batch_id"]))
            self._check_payment(payment, report, published_ids, stuck_before)
        for batch_id in sorted(batches):
            self._check_batch(batch_id, report, published_ids)
        return report

    def _check_payment(
        self,
        payment: Mapping[str, Any],
        report: Report,
        published: dict[str, set[str]] | None,
        stuck_before: str,
    ) -> None:
        pid = str(payment["payment_id"])
        history = [h["status"] for h in payment.get("history") or []]
        version = to_int(payment.get("version"))
        problems = report.mismatches
        if not history or history[0] != RECEIVED:
            problems.append(f"payment {pid}: history does not start with RECEIVED: {history}")
        for before, after in pairwise(history):
            if after not in ALLOWED.get(before, set()):
                problems.append(f"payment {pid}: illegal step {before} -> {after} in history")
        if version != len(history):
            problems.append(f"payment {pid}: version {version} but {len(history)} history steps")
        if history and payment.get("status") != history[-1]:
            problems.append(f"payment {pid}: status {payment.get('status')} != last history step")
        trail = self.repo.audit_trail(payment_entity(pid))
        report.audit_entries += len(trail)
        self._check_archive(payment_entity(pid), trail, report)
        steps = {}
        for entry in trail:
            head = str(entry["sk"]).split("#", 1)[0]
            if head.isdigit():
                steps[int(head)] = entry.get("status")
        expected_steps = {i + 1: status for i, status in enumerate(history)}
        if steps != expected_steps:
            problems.append(f"payment {pid}: audit steps {steps} != history {expected_steps}")
        expected_events = {events.event_id(entry) for entry in trail}
        report.events_expected += len(expected_events)
        if published is not None:
            seen = published.get(pid, set())
            if missing := sorted(expected_events - seen):
                problems.append(f"payment {pid}: audited but never published: {missing}")
            if extra := sorted(seen - expected_events):
                problems.append(f"payment {pid}: published without an audit entry: {extra}")
        if payment.get("status") in FINAL_STATUSES:
            report.final += 1
            if payment.get("pending_shard") is not None or payment.get("pending_at"):
                problems.append(f"payment {pid}: final but still in the pending index")
        elif str(payment.get("updated_at", "")) < stuck_before:
            problems.append(
                f"payment {pid}: {payment.get('status')} since {payment.get('updated_at')}"
            )

    def _check_batch(
        self, batch_id: str, report: Report, published: dict[str, set[str]] | None
    ) -> None:
        summary = self.repo.get_batch_summary(batch_id)
        problems = report.mismatches
        if summary is None:
            problems.append(f"batch {batch_id}: payments name it but it has no summary")
            return
        report.batches += 1
        run = str(summary.get("run"))
        counts = {k: to_int(summary.get(k)) for k in ("total_rows", "accepted", "rejected")}
        counts["duplicates"] = to_int(summary.get("duplicates"))
        status = summary.get("status")
        if counts["total_rows"] != counts["accepted"] + counts["rejected"] + counts["duplicates"]:
            problems.append(f"batch {batch_id}: counters do not add up: {counts}")
        if status == BATCH_COMPLETED:
            stored = sum(1 for p in self.payments_of_batch(batch_id) if p.get("batch_run") == run)
            rejects = sum(1 for _ in self.repo.row_outcomes(batch_id, REJECTED, run))
            duplicates = sum(1 for _ in self.repo.row_outcomes(batch_id, DUPLICATE, run))
            actual = (stored, rejects, duplicates)
            recorded = (counts["accepted"], counts["rejected"], counts["duplicates"])
            if actual != recorded:
                problems.append(
                    f"batch {batch_id}: counters {recorded} but stored rows {actual} "
                    "(accepted, rejected, duplicates)"
                )
        entity = batch_pk(batch_id)
        trail = self.repo.audit_trail(entity)
        self._check_archive(entity, trail, report)
        if status in (BATCH_COMPLETED, BATCH_FAILED):
            sk = f"{run}#{status}"
            if not any(e["sk"] == sk for e in trail):
                problems.append(f"batch {batch_id}: {status} without its audit entry {sk}")
            elif published is not None:
                wanted = f"{entity}#{sk}"
                if wanted not in published.get(entity, set()):
                    problems.append(f"batch {batch_id}: {status} never published ({wanted})")

    def _check_archive(self, entity: str, trail: list[dict[str, Any]], report: Report) -> None:
        """The entity's entries against their archived copies (those made since the first day
        of the archive read; older objects were not read)."""
        if self._archive is None:
            return
        by_entity, first_day, recent = self._archive
        archived = by_entity.get(entity, {})
        problems = report.mismatches
        in_table = set()
        for entry in trail:
            sk = str(entry["sk"])
            in_table.add(sk)
            if str(entry.get("at", "")) < first_day:
                continue
            found = archived.get(sk)
            if (found is None or not found.digests) and str(entry.get("at", "")) >= recent:
                report.archive_pending += 1
            elif found is None or not found.digests:
                problems.append(f"audit entry {entity} / {sk} is not in the audit archive")
            elif found.digests != {audit_archive.digest(entry)}:
                problems.append(f"audit entry {entity} / {sk} differs from its archived copy")
            else:
                report.archived = (report.archived or 0) + 1
        for sk, found in sorted(archived.items()):
            for change in found.changes:
                problems.append(f"audit entry {entity} / {sk} was changed in the table: {change}")
            if found.digests and sk not in in_table:
                problems.append(f"archived audit entry {entity} / {sk} is missing from the table")


def _owner(event: Mapping[str, Any]) -> str:
    """The stored payment id (or ``BATCH#<id>``, ``ERASURE#<digest>``) an event belongs to: a
    payment event names its client and the client's own id (payments.clients)."""
    if event.get("payment_id"):
        return stored_id_of(event)
    if event.get("customer_digest"):
        return f"{events.ERASURE_PREFIX}{event['customer_digest']}"
    return f"{events.BATCH_PREFIX}{event.get('batch_id')}"
