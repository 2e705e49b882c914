"""A chunk's valid rows written as payments: one transaction per ``ROWS_PER_TRANSACTION`` rows
(each payment with its first audit entry), and every row that could not be written sorted into
the chunk's outcome as this run's own earlier write, a duplicate or a conflict.

Each transaction also checks that its run is still the batch's current run and PROCESSING (a
``ConditionCheck`` on the summary). A chunk checked that once when it started, but a corrected
file may be uploaded and registered while the chunk is writing; without the check in every
transaction the old file's rows went on being stored and queued, and the corrected rows were
then rejected as conflicts. With it, the first transaction after the takeover is cancelled and
the chunk stops: its outcome says ``superseded`` and lists only the rows that were written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from payments import aws, errors
from payments.batch.context import BatchContext
from payments.batch.states import DUPLICATE, REJECTED
from payments.errors import TransientError
from payments.lifecycle import RECEIVED, SOURCE_BATCH, new_payment_item
from payments.repository import TransactionCanceled, now_iso, row_sk, to_int
from payments.validation import Payment

# 25 rows = 50 transaction items (payment + audit each), half of DynamoDB's 100-item limit, so
# one conflicting row costs a retry of at most 24 others.
ROWS_PER_TRANSACTION = 25
_TRANSACTION_ATTEMPTS = 5


@dataclass
class ChunkOutcome:
    accepted: list[str] = field(default_factory=list)
    # Duplicates whose stored payment is still RECEIVED: queued again (an earlier run may have
    # stored them and then failed to queue them).
    requeue: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # rejected + duplicate rows
    rejected: int = 0
    duplicates: int = 0
    # The run stopped being current while rows were written: the rows not yet written never
    # will be, and the chunk's counts must not be added.
    superseded: bool = False

    def reject(self, line: int, payment_id: str | None, code: str, reason: str, run: str) -> None:
        self.rejected += 1
        self.outcomes.append(
            {
                "sk": row_sk(REJECTED, run, line),
                "run": run,
                "line": line,
                "payment_id": payment_id,
                "code": code,
                "reason": reason,
            }
        )

    def duplicate(self, line: int, payment_id: str, reason: str, run: str) -> None:
        self.duplicates += 1
        self.outcomes.append(
            {
                "sk": row_sk(DUPLICATE, run, line),
                "run": run,
                "line": line,
                "payment_id": payment_id,
                "reason": reason,
            }
        )

    def merge(self, other: ChunkOutcome) -> None:
        self.accepted.extend(other.accepted)
        self.requeue.extend(other.requeue)
        self.outcomes.extend(other.outcomes)
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.superseded = self.superseded or other.superseded


def store_rows(
    ctx: BatchContext, batch_id: str, run: str, rows: list[tuple[int, Payment]]
) -> ChunkOutcome:
    """Write rows' payments + audit entries in one transaction; sort out the conflicts."""
    outcome = ChunkOutcome()
    pending = rows
    for attempt in range(_TRANSACTION_ATTEMPTS):
        if not pending:
            return outcome
        now = now_iso()
        ops: list[dict[str, Any]] = []
        hashes = []
        for line, payment in pending:
            assert payment.payment_id is not None
            item, audit = new_payment_item(
                payment,
                payment_id=payment.payment_id,
                source=SOURCE_BATCH,
                now=now,
                batch_id=batch_id,
                batch_run=run,
                batch_line=line,
            )
            hashes.append(item["content_hash"])
            ops.extend(ctx.repo.create_payment_ops(item, audit))
        ops.append(ctx.repo.run_current_check(batch_id, run))
        try:
            ctx.repo.transact(ops)
        except TransactionCanceled as exc:
            failed = exc.failed_conditions()
            if len(ops) - 1 in failed:
                outcome.superseded = True  # a newer upload took over, or the run ended
                return outcome
            retry = []
            for index, (line, payment) in enumerate(pending):
                if 2 * index not in failed and 2 * index + 1 not in failed:
                    retry.append((line, payment))
                    continue
                existing = failed.get(2 * index) or ctx.repo.get_payment(payment.payment_id or "")
                _classify(run, batch_id, line, payment, hashes[index], existing, outcome)
            pending = retry
            continue
        except TransientError:
            if attempt == _TRANSACTION_ATTEMPTS - 1:
                raise
            aws.backoff(attempt)
            continue
        outcome.accepted.extend(p.payment_id or "" for _, p in pending)
        return outcome
    if pending:
        raise TransientError("payment rows could not be written; the chunk will be retried")
    return outcome


def _classify(
    run: str,
    batch_id: str,
    line: int,
    payment: Payment,
    content_hash: str,
    existing: dict[str, Any] | None,
    outcome: ChunkOutcome,
) -> None:
    payment_id = payment.payment_id or ""
    if existing is None:
        raise TransientError(f"payment {payment_id} write was cancelled without a reason")
    if existing.get("batch_id") == batch_id and existing.get("batch_run") == run:
        existing_line = to_int(existing.get("batch_line"))
        if existing_line == line:
            outcome.accepted.append(payment_id)  # our own earlier attempt of this chunk
        else:
            outcome.duplicate(
                line,
                payment_id,
                f"payment_id already on line {existing_line} of this file",
                run,
            )
    elif existing.get("content_hash") == content_hash:
        outcome.duplicate(line, payment_id, "payment already stored with the same content", run)
        if existing.get("status") == RECEIVED:
            outcome.requeue.append(payment_id)
    else:
        outcome.reject(
            line,
            payment_id,
            errors.CONFLICT,
            "payment_id already stored with different content",
            run,
        )
