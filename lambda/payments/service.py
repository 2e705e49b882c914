"""Use cases behind the API and the queue consumer: submit, read, process, fraud signal."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from botocore.exceptions import ClientError

from payments import aws, processing
from payments.config import Config
from payments.errors import ConflictError, NotFoundError, TransientError
from payments.lifecycle import (
    FINAL_STATUSES,
    PROCESSING,
    RECEIVED,
    SOURCE_API,
    Publisher,
    amount_text,
    new_payment_item,
    public_view,
    status_event,
    transition,
)
from payments.repository import (
    Repository,
    TransactionCanceled,
    is_transient,
    now_iso,
    payment_entity,
)
from payments.validation import FraudSignal, Payment

# A payment needs at most three steps (RECEIVED -> PROCESSING -> final); a few more attempts
# absorb races with a concurrent worker before giving up to the queue's redelivery.
_MAX_STEPS = 6


class Payments:
    def __init__(
        self,
        config: Config,
        *,
        repo: Repository | None = None,
        publisher: Publisher | None = None,
        sqs: Any = None,
    ) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        self.publisher = publisher or Publisher(config.payment_events_topic_arn)
        self._sqs = sqs

    # -- API ------------------------------------------------------------------------------
    def submit(
        self, payment: Payment, *, payment_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Store a new payment and queue it: (202, payment); identical replay: (200, payment).

        Two AWS calls on the happy path: one transaction (payment + audit entry) and one
        SendMessage. A replay of a payment still RECEIVED queues it again, because the first
        attempt may have died between the two calls; the consumer is idempotent.
        """
        payment_id = payment.payment_id or payment_id or f"pay_{uuid.uuid4().hex}"
        item, audit = new_payment_item(
            payment, payment_id=payment_id, source=SOURCE_API, now=now_iso()
        )
        try:
            self.repo.transact(self.repo.create_payment_ops(item, audit))
        except TransactionCanceled as exc:
            existing = exc.failed_conditions().get(0) or self.repo.get_payment(payment_id)
            if existing is None:
                raise TransientError("payment write was cancelled; retry") from exc
            if existing.get("content_hash") != item["content_hash"]:
                raise ConflictError(
                    f"payment {payment_id} already exists with different content",
                    details={"payment_id": payment_id},
                ) from None
            if existing["status"] == RECEIVED:
                self.enqueue(payment_id)
            return 200, public_view(existing)
        self.enqueue(payment_id)
        return 202, public_view(item)

    def get(self, payment_id: str) -> dict[str, Any]:
        item = self.repo.get_payment(payment_id, consistent=False)
        if item is None:
            raise NotFoundError(
                f"payment {payment_id} not found", details={"payment_id": payment_id}
            )
        return public_view(item)

    def enqueue(self, payment_id: str) -> None:
        sqs = self._sqs or aws.client("sqs")
        try:
            sqs.send_message(
                QueueUrl=self.config.processing_queue_url,
                MessageBody=json.dumps({"payment_id": payment_id}),
            )
        except ClientError as exc:
            raise TransientError(f"could not queue payment {payment_id}: {exc}") from exc

    # -- queue consumer -------------------------------------------------------------------
    def process(self, payment_id: str, *, redelivered: bool = False) -> str:
        """Drive a payment to its final status; a redelivery finds it done and changes nothing.

        A redelivered message may come from a first delivery that committed the final step and
        then failed or died before its event went out; so a redelivery that finds the payment
        final publishes the final event again. It has the same ``event_id``, so a consumer that
        already has it drops the copy: at least once, never lost.
        """
        item = self.repo.get_payment(payment_id)
        if item is None:
            # The API writes the payment before queueing it, so this message is not ours:
            # failing it sends it to the DLQ for a human instead of dropping it.
            raise NotFoundError(f"payment {payment_id} not found")
        republish = redelivered
        for _ in range(_MAX_STEPS):
            status = item["status"]
            if status in FINAL_STATUSES:
                if republish:
                    history = item.get("history") or []
                    previous = history[-2]["status"] if len(history) > 1 else None
                    self.publisher.publish(status_event(item, previous=previous))
                return status
            republish = False
            if status == RECEIVED:
                moved = transition(self.repo, self.publisher, item, PROCESSING, actor="processor")
            else:
                final, reason = processing.decide(item, self.config.max_payment_amount)
                moved = transition(
                    self.repo, self.publisher, item, final, reason=reason, actor="processor"
                )
            item = moved or self.repo.get_payment(payment_id)
            assert item is not None
        raise TransientError(f"payment {payment_id} kept changing under the processor")

    # -- fraud webhook --------------------------------------------------------------------
    def report_fraud(self, signal: FraudSignal, raw_body: bytes) -> dict[str, Any]:
        """Fail a payment that is not final; audit + publish an alert on a final one.

        The alert's audit key is derived from the webhook body, so a redelivered webhook adds
        no second entry and publishes nothing twice.
        """
        item = self.repo.get_payment(signal.payment_id)
        if item is None:
            raise NotFoundError(
                f"payment {signal.payment_id} not found", details={"payment_id": signal.payment_id}
            )
        digest = hashlib.sha256(raw_body).hexdigest()[:24]
        if item.get("fraud_signal") == digest and item["status"] in FINAL_STATUSES:
            # This very webhook already failed the payment (a redelivery): nothing to add.
            return {"payment_id": signal.payment_id, "status": item["status"], "action": "none"}
        details = {"risk_score": signal.risk_score, "signal_reason": signal.reason}
        for _ in range(_MAX_STEPS):
            status = item["status"]
            if status in FINAL_STATUSES:
                break
            target = PROCESSING if status == RECEIVED else "FAILED"
            moved = transition(
                self.repo,
                self.publisher,
                item,
                target,
                reason=processing.FRAUD_SUSPECTED,
                actor="fraud-webhook",
                details=details,
                extra_changes={
                    "fraud_flagged": True,
                    "risk_score": signal.risk_score,
                    "fraud_signal": digest,
                },
            )
            item = moved or self.repo.get_payment(signal.payment_id)
            assert item is not None
            if moved is not None and moved["status"] == "FAILED":
                return {"payment_id": signal.payment_id, "status": "FAILED", "action": "failed"}
        else:
            raise TransientError("payment kept changing under the fraud webhook")
        now = now_iso()
        alert = {
            "entity_id": payment_entity(signal.payment_id),
            "sk": f"FRAUD_ALERT#{digest}",
            "at": now,
            "event": "payment.fraud_alert",
            "status": item["status"],
            "reason": processing.FRAUD_SUSPECTED,
            "actor": "fraud-webhook",
            "details": details,
        }
        if self.repo.put_audit(alert):
            self.publisher.publish(
                {
                    "type": "payment.fraud_alert",
                    "event_id": f"{signal.payment_id}#FRAUD_ALERT#{digest}",
                    "payment_id": signal.payment_id,
                    "status": item["status"],
                    "risk_score": signal.risk_score,
                    "reason": signal.reason,
                    "amount": amount_text(item),
                    "currency": item["currency"],
                    "at": now,
                }
            )
        return {"payment_id": signal.payment_id, "status": item["status"], "action": "alerted"}


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) or (isinstance(exc, ClientError) and is_transient(exc))
