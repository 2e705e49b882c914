"""Scheduled sweeper (EventBridge Scheduler): re-queue stuck payments, fail timed-out batches.

What it found goes out as embedded metrics (``StuckPayments``, ``TimedOutBatches``); the alarm
on them fires when two runs in a row find work, i.e. when a fault keeps leaving work behind.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from payments import env
from payments.sweep import Sweeper

from handlers.common import business_metrics, logger, settings

metrics = business_metrics("sweeper")

_REQUIRED = (
    env.PAYMENTS_TABLE,
    env.PROCESSING_STATUS_TABLE,
    env.AUDIT_LOG_TABLE,
    env.PROCESSING_QUEUE_URL,
)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = Sweeper(settings().require(*_REQUIRED)).run().as_dict()
    metrics.add_metric(name="StuckPayments", unit=MetricUnit.Count, value=report["stuck_payments"])
    metrics.add_metric(
        name="TimedOutBatches", unit=MetricUnit.Count, value=report["timed_out_batches"]
    )
    metrics.add_metric(
        name="MinimisedPayments", unit=MetricUnit.Count, value=report["minimised_payments"]
    )
    if report["stuck_payments"] or report["timed_out_batches"]:
        logger.warning("sweeper found work a fault left behind", **report)
    return report
