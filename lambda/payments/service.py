"""Use cases behind the API and the queue consumer: submit, read, process, fraud signal."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payments import aws, events, idempotency, processing
from payments.clients import DEFAULT, Client, split_stored_id, stored_payment_id
from payments.config import Config
from payments.errors import ConflictError, NotFoundError, PaymentError, TransientError
from payments.idempotency import payment_id_for_key
from payments.lifecycle import (
    FINAL_STATUSES,
    PROCESSING,
    RECEIVED,
    SOURCE_API,
    Step,
    commit,
    new_payment_item,
    prepare_step,
    public_view,
)
from payments.repository import (
    Repository,
    TransactionCanceled,
    is_transient,
    now_iso,
    payment_entity,
)
from payments.validation import FraudSignal, Payment

# A transaction takes at most 100 items; a step is two (the payment and its audit entry).
_STEPS_PER_TRANSACTION = 50
# A payment needs at most three steps (RECEIVED -> PROCESSING -> final); a few more attempts
# absorb races with a concurrent worker before giving up to the queue's redelivery.
_MAX_STEPS = 6


class Payments:
    def __init__(
        self,
        config: Config,
        *,
        repo: Repository | None = None,
        sqs: Any = None,
    ) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        self._sqs = sqs

    # -- API ------------------------------------------------------------------------------
    def submit(
        self,
        payment: Payment,
        *,
        idempotency_key: str | None = None,
        client: Client = DEFAULT,
    ) -> tuple[int, dict[str, Any]]:
        """Store ``client``'s new payment and queue it: (202, payment); identical replay: (200,
        payment). Its id and ``idempotency_key`` are in the client's namespace (payments.clients).

        Two AWS calls on the happy path: one transaction (payment + audit entry, and with
        ``idempotency_key`` the key's binding) and one SendMessage. A replay is answered from
        the cancelled transaction (``ALL_OLD``: no read) and queues a payment still RECEIVED
        again, because the first attempt may have died between the two calls; the consumer is
        idempotent.
        """
        payment_id = client.stored_id(
            payment.payment_id
            or (payment_id_for_key(idempotency_key) if idempotency_key is not None else None)
            or f"pay_{uuid.uuid4().hex}"
        )
        now = now_iso()
        item, audit = new_payment_item(payment, payment_id=payment_id, source=SOURCE_API, now=now)
        ops = self.repo.create_payment_ops(item, audit)
        key_binding = None
        if idempotency_key is not None:
            key_binding = idempotency.binding(
                idempotency_key,
                payment_id=payment_id,
                request_hash=payment.request_hash(),
                now=now,
                client_id=client.client_id,
            )
            ops.append(self.repo.key_binding_op(key_binding))
        try:
            self.repo.transact(ops)
        except TransactionCanceled as exc:
            existing = self._resubmitted(exc, item, key_binding, binding_index=len(ops) - 1)
            if existing["status"] == RECEIVED:
                self.enqueue(existing["payment_id"])
            return 200, public_view(existing)
        self.enqueue(payment_id)
        return 202, public_view(item)

    def _resubmitted(
        self,
        exc: TransactionCanceled,
        item: dict[str, Any],
        key_binding: dict[str, Any] | None,
        *,
        binding_index: int,
    ) -> dict[str, Any]:
        """The payment a cancelled create replays, or the conflict it is."""
        failed = exc.failed_conditions()
        if key_binding is not None and binding_index in failed:
            # The key is bound: only its own request may replay, and it replays that payment.
            key, request_hash = key_binding["idempotency_key"], key_binding["request_hash"]
            bound = failed[binding_index] or self.repo.get_key_binding(
                key, key_binding["client_id"]
            )
            if bound is None:
                raise TransientError("payment write was cancelled; retry") from exc
            idempotency.check_same_request(bound, key, request_hash)
            payment_id = bound["payment_id"]
            existing = failed.get(0) if payment_id == item["payment_id"] else None
            existing = existing or self.repo.get_payment(payment_id)
            if existing is None:
                raise TransientError("payment write was cancelled; retry") from exc
            return existing
        payment_id = item["payment_id"]
        existing = failed.get(0) or self.repo.get_payment(payment_id)
        if existing is None:
            raise TransientError("payment write was cancelled; retry") from exc
        if existing.get("content_hash") != item["content_hash"]:
            own_id = split_stored_id(payment_id)[1]
            raise ConflictError(
                f"payment {own_id} already exists with different content",
                details={"payment_id": own_id},
            ) from None
        if key_binding is not None:
            # The payment was made without this key (unkeyed, or with another key): the key
            # now names it, unless a request racing this one bound the key first.
            bound = self.repo.bind_key(key_binding)
            if bound is not None:
                key = key_binding["idempotency_key"]
                idempotency.check_same_request(bound, key, key_binding["request_hash"])
        return existing

    def get(
        self,
        payment_id: str,
        *,
        consistent: bool = False,
        client: Client = DEFAULT,
    ) -> dict[str, Any]:
        """``client``'s payment ``payment_id``: another client's is not found, as no payment is.

        ``GET /payments/{id}`` reads eventually consistent (half the cost); a read that must
        see a payment just answered 202 asks for ``consistent``."""
        item = self.repo.get_payment(client.stored_id(payment_id), consistent=consistent)
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
    def process(self, payment_id: str) -> str:
        """Drive a payment to its final status; a redelivery finds it done and changes nothing.

        Each step commits its audit entry with it, and the outbox publishes that entry, so a
        delivery that dies between two steps loses nothing: the next one carries on from the
        status it finds.
        """
        item = self.repo.get_payment(payment_id)
        if item is None:
            # The API writes the payment before queueing it, so this message is not ours:
            # failing it sends it to the DLQ for a human instead of dropping it.
            raise NotFoundError(f"payment {payment_id} not found")
        for _ in range(_MAX_STEPS):
            step = self._next_step(item)
            if step is None:
                return str(item["status"])
            item = commit(self.repo, step) or self.repo.get_payment(payment_id)
            assert item is not None
        raise TransientError(f"payment {payment_id} kept changing under the processor")

    def process_many(self, payment_ids: Sequence[str]) -> dict[str, str | Exception]:
        """``process`` for one queue batch, in a few calls instead of three per payment: one
        strongly consistent read of them all, then one transaction per step that commits that
        step for every payment (each item still conditional on the status and version read).

        That is the common case. When anything else happens (a payment changed since the read,
        a redelivery racing another worker, a throttled or conflicting transaction), the
        payments not yet final take the one-by-one path, which already settles each of those
        cases; so the outcome is the same as calling ``process`` on each id. Returns each id's
        final status, or the error its message should fail with.
        """
        outcome: dict[str, str | Exception] = {}
        unique = list(dict.fromkeys(payment_ids))
        found: dict[str, dict[str, Any]] = {}
        try:
            found = self.repo.get_payments(unique)
            for payment_id in unique:
                if payment_id not in found:
                    outcome[payment_id] = NotFoundError(f"payment {payment_id} not found")
            for _ in range(2):  # RECEIVED -> PROCESSING -> final
                steps = [self._next_step(item) for item in found.values()]
                steps = [step for step in steps if step is not None]
                for group in _groups(steps, _STEPS_PER_TRANSACTION):
                    self.repo.transact([op for step in group for op in step.ops])
                    found.update((step.payment_id, step.updated) for step in group)
        except (TransactionCanceled, PaymentError, ClientError, BotoCoreError):
            pass  # what is not final yet goes one by one below
        for payment_id, item in found.items():
            if item["status"] in FINAL_STATUSES:
                outcome[payment_id] = item["status"]
        for payment_id in unique:
            if payment_id not in outcome:
                try:
                    outcome[payment_id] = self.process(payment_id)
                except Exception as exc:  # that message's failure, as when it is processed alone
                    outcome[payment_id] = exc
        return outcome

    def _next_step(self, item: dict[str, Any]) -> Step | None:
        """The processor's next step for ``item`` as read; None once it is final."""
        status = item["status"]
        if status in FINAL_STATUSES:
            return None
        if status == RECEIVED:
            return prepare_step(self.repo, item, PROCESSING, actor="processor")
        final, reason = processing.decide(item, self.config.max_payment_amount)
        return prepare_step(self.repo, item, final, reason=reason, actor="processor")

    # -- fraud webhook --------------------------------------------------------------------
    def report_fraud(self, signal: FraudSignal, raw_body: bytes) -> dict[str, Any]:
        """Fail a payment that is not final; audit an alert on a final one.

        Both are audit entries, so the outbox publishes them; the alert's key is derived from
        the webhook body, so a redelivered webhook adds no second entry. A provider's retry after
        a failed answer therefore finds its work done and answers the same way.
        """
        stored = stored_payment_id(signal.client_id, signal.payment_id)
        item = self.repo.get_payment(stored)
        if item is None:
            raise NotFoundError(
                f"payment {signal.payment_id} not found", details={"payment_id": signal.payment_id}
            )
        digest = hashlib.sha256(raw_body).hexdigest()[:24]
        if item.get("fraud_signal") == digest and item["status"] in FINAL_STATUSES:
            # This very webhook already failed the payment: a provider's retry (its first answer
            # was lost) gets the first answer again, and nothing is written twice.
            return {"payment_id": signal.payment_id, "status": item["status"], "action": "failed"}
        details = {"risk_score": signal.risk_score, "signal_reason": signal.reason}
        for _ in range(_MAX_STEPS):
            status = item["status"]
            if status in FINAL_STATUSES:
                break
            target = PROCESSING if status == RECEIVED else "FAILED"
            step = prepare_step(
                self.repo,
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
            moved = commit(self.repo, step)
            item = moved or self.repo.get_payment(stored)
            assert item is not None
            if moved is not None and moved["status"] == "FAILED":
                return {"payment_id": signal.payment_id, "status": "FAILED", "action": "failed"}
        else:
            raise TransientError("payment kept changing under the fraud webhook")
        alert = {
            "entity_id": payment_entity(stored),
            "sk": f"FRAUD_ALERT#{digest}",
            "at": now_iso(),
            "event": events.PAYMENT_FRAUD_ALERT,
            "status": item["status"],
            # The payment's version when the alert was raised: consumers order by it.
            "version": item["version"],
            "reason": processing.FRAUD_SUSPECTED,
            "actor": "fraud-webhook",
            "details": details,
            "amount": item["amount"],
            "currency": item["currency"],
        }
        self.repo.put_audit(alert)  # False: this very alert is already recorded (a retry)
        return {"payment_id": signal.payment_id, "status": item["status"], "action": "alerted"}


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) or (isinstance(exc, ClientError) and is_transient(exc))


def _groups(steps: list[Step], size: int) -> list[list[Step]]:
    return [steps[i : i + size] for i in range(0, len(steps), size)]
