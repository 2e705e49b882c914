"""The simulated, deterministic payment processing rules (DESIGN section 3).

The outcome depends only on the stored payment and the environment's limit, so a redelivered
message reaches the same decision as the first delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from payments.lifecycle import COMPLETED, FAILED

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
FRAUD_SUSPECTED = "FRAUD_SUSPECTED"
# Simulation hook: a payment submitted with metadata {"fraud_flag": "true"} is treated as flagged
# by the (simulated) fraud screening, so demos and tests can exercise that outcome on purpose.
FRAUD_FLAG_METADATA_KEY = "fraud_flag"


def is_fraud_flagged(payment: Mapping[str, Any]) -> bool:
    if payment.get("fraud_flagged") is True:
        return True
    metadata = payment.get("metadata") or {}
    return str(metadata.get(FRAUD_FLAG_METADATA_KEY, "")).lower() == "true"


def decide(payment: Mapping[str, Any], max_payment_amount: Decimal) -> tuple[str, str | None]:
    """Return the final ``(status, reason)`` of a payment."""
    if Decimal(payment["amount"]) > max_payment_amount:
        return FAILED, LIMIT_EXCEEDED
    if is_fraud_flagged(payment):
        return FAILED, FRAUD_SUSPECTED
    return COMPLETED, None
