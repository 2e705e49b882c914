"""Alarms (staging and production) and a dashboard of the same metrics (every environment).

The dashboard is built in every environment: it costs next to nothing and developers want the
same view in dev that operators have in production. Alarms only exist where someone is paged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from constructs import Construct

from lib.api_spec import ROUTES
from lib.settings import METRICS_NAMESPACE, SERVICE, Settings

TEN_MINUTES = 600
FIVE_MINUTES = 300
LAMBDA_ERRORS_THRESHOLD = 5
API_5XX_THRESHOLD = 10
# Latency must stay high for three consecutive five-minute periods: one slow cold start is not
# an incident.
LATENCY_PERIODS = 3
# The success-rate SLO is judged over six five-minute periods, five of them breaching.
SLO_PERIODS = 6
LAMBDA_THROTTLES_THRESHOLD = 5
# A function whose p99 run nears its timeout is about to start timing out.
DURATION_SHARE_OF_TIMEOUT = 0.8
# A healthy processing queue drains in seconds; five minutes of age is work not being done.
PROCESSING_AGE_SECONDS = 300
# Downstream consumers may lag, but an event an hour old means one has stopped.
SUBSCRIBER_AGE_SECONDS = 3600
# Conflicts are retried by the SDK and the runtime; this many in five minutes, twice in a row,
# means writers keep losing to each other (a hot item, a runaway retry).
TRANSACTION_CONFLICTS_THRESHOLD = 50
# The DynamoDB operations the functions and the workflow call (SystemErrors is per operation).
DYNAMODB_OPERATIONS = (
    "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchWriteItem",
    "TransactWriteItems",
)  # fmt: skip
PER_MINUTE = 60
# Embedded metrics of lambda/handlers/processor.py and batch_tasks.py.
PAYMENT_METRICS = ("PaymentsCompleted", "PaymentsFailed")
BATCH_ROW_METRICS = ("BatchRows", "BatchRowsAccepted", "BatchRowsRejected", "BatchRowsDuplicate")
# The sections of docs/RUNBOOK.md alarms link to (tests/infra/test_monitoring.py checks each is
# a heading there).
RUNBOOK_SECTIONS = (
    "function-errors",
    "function-throttles-and-duration",
    "dead-letter-queues",
    "api-errors-and-latency",
    "table-throttles-and-errors",
    "stuck-payments",
    "timed-out-batches",
    "batch-executions",
    "lost-uploads",
    "queue-age",
    "event-delivery",
)
SWEEPER_FINDINGS = {
    "StuckPayments": "two sweeps in a row found payments stuck short of a final status",
    "TimedOutBatches": "two sweeps in a row found batch runs past the workflow's timeout",
}


@dataclass(frozen=True, kw_only=True)
class MonitoredResources:
    function_names: Sequence[str]
    dead_letter_queue_names: Sequence[str]
    api_name: str
    stage_name: str
    table_names: Sequence[str]
    state_machine_arn: str
    alarms_topic_arn: str
    sweeper_function_name: str
    # Function name -> timeout in seconds (duration alarms).
    function_timeouts: Mapping[str, int]
    batch_trigger_function_name: str
    processor_function_name: str
    batch_tasks_function_name: str
    processing_queue_name: str
    subscriber_queue_name: str
    payment_events_topic_name: str


@dataclass(frozen=True)
class _Metric:
    namespace: str
    name: str
    dimensions: Mapping[str, str]


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, settings: Settings, resources: MonitoredResources
    ) -> None:
        super().__init__(scope, id_)
        r = resources
        self._topic = r.alarms_topic_arn
        self._runbook = settings.runbook_url
        self.alarms: list[CloudwatchMetricAlarm] = []
        api_dims = {"ApiName": r.api_name, "Stage": r.stage_name}
        if settings.profile.alarms_enabled:
            for name in r.function_names:
                self._alarm(
                    f"{name}-errors",
                    _Metric("AWS/Lambda", "Errors", {"FunctionName": name}),
                    period=TEN_MINUTES,
                    threshold=LAMBDA_ERRORS_THRESHOLD,
                    description=f"{name} failed {LAMBDA_ERRORS_THRESHOLD} or more invocations "
                    "in 10 minutes",
                    runbook="function-errors",
                )
            for name in r.dead_letter_queue_names:
                self._alarm(
                    f"{name}-not-empty",
                    _Metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": name}),
                    statistic="Maximum",
                    period=FIVE_MINUTES,
                    threshold=1,
                    description=f"dead-letter queue {name} holds work that failed for good",
                    runbook="dead-letter-queues",
                )
            self._alarm(
                f"{r.api_name}-5xx",
                _Metric("AWS/ApiGateway", "5XXError", api_dims),
                period=TEN_MINUTES,
                threshold=API_5XX_THRESHOLD,
                description=f"the API answered {API_5XX_THRESHOLD} or more 5xx in 10 minutes",
                runbook="api-errors-and-latency",
            )
            self._alarm(
                f"{r.api_name}-p99-latency",
                _Metric("AWS/ApiGateway", "Latency", api_dims),
                statistic=None,
                extended_statistic="p99",
                period=FIVE_MINUTES,
                evaluation_periods=LATENCY_PERIODS,
                threshold=settings.profile.api_p99_latency_ms,
                description=f"the API's p99 latency stayed at or above "
                f"{settings.profile.api_p99_latency_ms} ms for 15 minutes",
                runbook="api-errors-and-latency",
            )
            self._success_rate_slo(r.api_name, api_dims, settings.profile.api_success_rate_slo)
            for route in ROUTES:
                # Per-route metrics need the stage's detailed metrics (metrics_enabled: lib/api.py).
                self._alarm(
                    f"{r.api_name}-{_kebab(route.operation_id)}-p99-latency",
                    _Metric(
                        "AWS/ApiGateway",
                        "Latency",
                        {**api_dims, "Method": route.method, "Resource": route.path},
                    ),
                    statistic=None,
                    extended_statistic="p99",
                    period=FIVE_MINUTES,
                    evaluation_periods=LATENCY_PERIODS,
                    threshold=settings.profile.api_p99_latency_ms,
                    description=f"{route.method} {route.path}: p99 latency at or above its SLO of "
                    f"{settings.profile.api_p99_latency_ms} ms for 15 minutes",
                    runbook="api-errors-and-latency",
                )
            for table in r.table_names:
                self._throttle_alarm(table)
            # One sweep finding work can be a slow payment; two in a row is a fault that keeps
            # leaving work behind (a poison message, a consumer down).
            for metric in ("StuckPayments", "TimedOutBatches"):
                self._alarm(
                    f"{r.sweeper_function_name}-{metric}",
                    _Metric(
                        METRICS_NAMESPACE,
                        metric,
                        {"service": SERVICE, "FunctionName": r.sweeper_function_name},
                    ),
                    period=settings.profile.sweep_rate_minutes * 60,
                    evaluation_periods=2,
                    threshold=1,
                    description=SWEEPER_FINDINGS[metric],
                    runbook=_kebab(metric),
                )
            for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
                self._alarm(
                    f"{settings.name('batch')}-{_kebab(metric)}",
                    _Metric("AWS/States", metric, {"StateMachineArn": r.state_machine_arn}),
                    period=FIVE_MINUTES,
                    threshold=1,
                    description=f"a batch workflow execution "
                    f"{_kebab(metric.removeprefix('Executions')).replace('-', ' ')}: a platform "
                    "fault left a batch FAILED",
                    runbook="batch-executions",
                )
            self._alarm(
                f"{settings.name('batch')}-execution-throttled",
                _Metric(
                    "AWS/States", "ExecutionThrottled", {"StateMachineArn": r.state_machine_arn}
                ),
                period=FIVE_MINUTES,
                threshold=1,
                description="Step Functions throttled the batch workflow: uploads wait to start",
                runbook="batch-executions",
            )
            self._stuck_and_lost_work(r)
        self.dashboard = CloudwatchDashboard(
            self,
            "dashboard",
            dashboard_name=settings.name("overview"),
            dashboard_body=json.dumps(_dashboard(settings.region, r, api_dims)),
        )

    def _stuck_and_lost_work(self, r: MonitoredResources) -> None:
        """Work that waits, is throttled, times out, or never arrives."""
        for name, timeout in r.function_timeouts.items():
            function = {"FunctionName": name}
            self._alarm(
                f"{name}-throttles",
                _Metric("AWS/Lambda", "Throttles", function),
                period=TEN_MINUTES,
                threshold=LAMBDA_THROTTLES_THRESHOLD,
                description=f"{name} was throttled {LAMBDA_THROTTLES_THRESHOLD} or more times "
                "in 10 minutes: its reserved concurrency is full",
                runbook="function-throttles-and-duration",
            )
            self._alarm(
                f"{name}-p99-duration",
                _Metric("AWS/Lambda", "Duration", function),
                statistic=None,
                extended_statistic="p99",
                period=FIVE_MINUTES,
                evaluation_periods=LATENCY_PERIODS,
                threshold=int(timeout * 1000 * DURATION_SHARE_OF_TIMEOUT),
                description=f"{name}'s p99 run took {int(DURATION_SHARE_OF_TIMEOUT * 100)} % "
                f"of its {timeout} s timeout for 15 minutes: it is about to time out",
                runbook="function-throttles-and-duration",
            )
        # S3 invokes batch-trigger asynchronously: an event Lambda could not even put in the
        # DLQ, or dropped (too old, too many retries), is an upload nobody will process.
        trigger = {"FunctionName": r.batch_trigger_function_name}
        for metric in ("DeadLetterErrors", "AsyncEventsDropped"):
            self._alarm(
                f"{r.batch_trigger_function_name}-{_kebab(metric)}",
                _Metric("AWS/Lambda", metric, trigger),
                period=FIVE_MINUTES,
                threshold=1,
                description="an S3 upload event was lost before its workflow started "
                f"({metric}): an uploaded file nobody will process",
                runbook="lost-uploads",
            )
        for queue, age in (
            (r.processing_queue_name, PROCESSING_AGE_SECONDS),
            (r.subscriber_queue_name, SUBSCRIBER_AGE_SECONDS),
        ):
            self._alarm(
                f"{queue}-oldest-message-age",
                _Metric("AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": queue}),
                statistic="Maximum",
                period=FIVE_MINUTES,
                evaluation_periods=2,
                threshold=age,
                description=f"the oldest message in {queue} is {age} s old or more: its "
                "consumer is not keeping up or has stopped",
                runbook="queue-age",
            )
        topic = {"TopicName": r.payment_events_topic_name}
        for metric in ("NumberOfNotificationsFailed", "NumberOfNotificationsRedrivenToDlq"):
            self._alarm(
                f"{r.payment_events_topic_name}-{_kebab(metric.removeprefix('NumberOf'))}",
                _Metric("AWS/SNS", metric, topic),
                period=FIVE_MINUTES,
                threshold=1,
                description=f"SNS could not deliver payment events ({metric})",
                runbook="event-delivery",
            )
        for table in r.table_names:
            self._system_errors_alarm(table)
            self._alarm(
                f"{table}-transaction-conflicts",
                _Metric("AWS/DynamoDB", "TransactionConflict", {"TableName": table}),
                period=FIVE_MINUTES,
                evaluation_periods=2,
                threshold=TRANSACTION_CONFLICTS_THRESHOLD,
                description=f"{table}: {TRANSACTION_CONFLICTS_THRESHOLD} or more transaction "
                "conflicts in each of 10 minutes: writers keep losing to each other",
                runbook="table-throttles-and-errors",
            )

    def _success_rate_slo(self, api_name: str, api_dims: Mapping[str, str], slo: float) -> None:
        """The share of requests answered without a 5xx, against the profile's SLO, over half an
        hour (5 of 6 five-minute periods): a burn that lasts, not one bad minute. Periods without
        requests have no rate and count as meeting it."""

        self._add(
            f"{api_name}-success-rate-slo",
            metric_query=[
                _summed("count", _Metric("AWS/ApiGateway", "Count", api_dims)),
                _summed("errors", _Metric("AWS/ApiGateway", "5XXError", api_dims)),
                _expression(
                    "success",
                    "100 * (1 - FILL(errors, 0) / count)",
                    "Requests answered without a 5xx (%)",
                ),
            ],
            comparison_operator="LessThanThreshold",
            evaluation_periods=SLO_PERIODS,
            datapoints_to_alarm=SLO_PERIODS - 1,
            threshold=slo,
            description=f"the API answered fewer than {slo} % of its requests without a 5xx "
            "over half an hour (its success-rate SLO)",
            runbook="api-errors-and-latency",
        )

    def _system_errors_alarm(self, table: str) -> None:
        # SystemErrors (DynamoDB's own 500s) is published per table and operation, and only for
        # periods that had some: the sum over the operations this platform calls, gaps as 0.
        queries = [
            _summed(
                f"op{index}",
                _Metric(
                    "AWS/DynamoDB", "SystemErrors", {"TableName": table, "Operation": operation}
                ),
            )
            for index, operation in enumerate(DYNAMODB_OPERATIONS)
        ]
        self._add(
            f"{table}-system-errors",
            metric_query=[
                *queries,
                _expression(
                    "errors",
                    " + ".join(f"FILL({q.id}, 0)" for q in queries),
                    "DynamoDB system errors",
                ),
            ],
            evaluation_periods=1,
            threshold=1,
            description=f"{table}: DynamoDB answered with its own server errors",
            runbook="table-throttles-and-errors",
        )

    def _alarm(
        self,
        name: str,
        metric: _Metric,
        *,
        period: int,
        threshold: float,
        description: str,
        runbook: str,
        statistic: str | None = "Sum",
        extended_statistic: str | None = None,
        evaluation_periods: int = 1,
    ) -> None:
        self._add(
            name,
            description=description,
            runbook=runbook,
            namespace=metric.namespace,
            metric_name=metric.name,
            dimensions=dict(metric.dimensions),
            statistic=statistic,
            extended_statistic=extended_statistic,
            period=period,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            threshold=threshold,
        )

    def _throttle_alarm(self, table: str) -> None:
        # ThrottledRequests carries an Operation dimension, so per table it is the sum of the
        # table-level read and write throttle events. DynamoDB publishes each only for periods
        # that had such throttles; FILL makes the other one 0 there, so write throttles alone
        # (a batch upload) still add up to a breaching value rather than to a missing one.
        def events(id_: str, metric: str) -> CloudwatchMetricAlarmMetricQuery:
            return _summed(id_, _Metric("AWS/DynamoDB", metric, {"TableName": table}))

        self._add(
            f"{table}-throttles",
            metric_query=[
                events("reads", "ReadThrottleEvents"),
                events("writes", "WriteThrottleEvents"),
                _expression("throttles", "FILL(reads, 0) + FILL(writes, 0)", "Throttled requests"),
            ],
            evaluation_periods=1,
            threshold=1,
            description=f"{table}: requests were throttled",
            runbook="table-throttles-and-errors",
        )

    def _add(
        self,
        name: str,
        *,
        description: str,
        runbook: str,
        comparison_operator: str = "GreaterThanOrEqualToThreshold",
        **query: Any,
    ) -> None:
        """One alarm on the alarms topic; its description says what is wrong and links the
        section of docs/RUNBOOK.md that says what to do."""
        assert runbook in RUNBOOK_SECTIONS, runbook
        self.alarms.append(
            CloudwatchMetricAlarm(
                self,
                name,
                alarm_name=name,
                alarm_description=f"{description}. Runbook: {self._runbook}#{runbook}",
                comparison_operator=comparison_operator,
                # No data means no invocations, messages or requests: nothing is failing.
                treat_missing_data="notBreaching",
                alarm_actions=[self._topic],
                ok_actions=[self._topic],
                **query,
            )
        )


def _summed(id_: str, metric: _Metric) -> CloudwatchMetricAlarmMetricQuery:
    """A metric math input: ``metric`` summed over five minutes, not itself the alarm's value."""
    return CloudwatchMetricAlarmMetricQuery(
        id=id_,
        return_data=False,
        metric=CloudwatchMetricAlarmMetricQueryMetric(
            namespace=metric.namespace,
            metric_name=metric.name,
            dimensions=dict(metric.dimensions),
            period=FIVE_MINUTES,
            stat="Sum",
        ),
    )


def _expression(id_: str, expression: str, label: str) -> CloudwatchMetricAlarmMetricQuery:
    """The metric math an alarm compares with its threshold."""
    return CloudwatchMetricAlarmMetricQuery(
        id=id_, expression=expression, label=label, return_data=True
    )


def _business(metric: str, function_name: str) -> list[str]:
    """A Powertools embedded metric: the service and the emitting function as dimensions."""
    return [METRICS_NAMESPACE, metric, "service", SERVICE, "FunctionName", function_name]


def _kebab(metric: str) -> str:
    """``ExecutionsTimedOut`` -> ``executions-timed-out`` (alarm names read like the others)."""
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in metric).lstrip("-")


def _widget(
    title: str,
    region: str,
    metrics: list[list],
    *,
    stat: str = "Sum",
    period: int = FIVE_MINUTES,
) -> dict:
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "stat": stat,
            "period": period,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def _dashboard(region: str, r: MonitoredResources, api_dims: Mapping[str, str]) -> dict:
    api = ["ApiName", api_dims["ApiName"], "Stage", api_dims["Stage"]]
    return {
        "widgets": [
            _widget(
                "Lambda errors",
                region,
                [["AWS/Lambda", "Errors", "FunctionName", n] for n in r.function_names],
            ),
            _widget(
                "Dead-letter queues",
                region,
                [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", n]
                    for n in r.dead_letter_queue_names
                ],
                stat="Maximum",
            ),
            _widget(
                "API 4XX / 5XX",
                region,
                [["AWS/ApiGateway", m, *api] for m in ("4XXError", "5XXError")],
            ),
            _widget("API latency p99", region, [["AWS/ApiGateway", "Latency", *api]], stat="p99"),
            _widget(
                "DynamoDB throttles",
                region,
                [
                    ["AWS/DynamoDB", m, "TableName", t]
                    for t in r.table_names
                    for m in ("ReadThrottleEvents", "WriteThrottleEvents")
                ],
            ),
            _widget(
                "Batch workflow",
                region,
                [
                    ["AWS/States", m, "StateMachineArn", r.state_machine_arn]
                    for m in (
                        "ExecutionsSucceeded",
                        "ExecutionsFailed",
                        "ExecutionsTimedOut",
                        "ExecutionsAborted",
                    )
                ],
            ),
            _widget(
                "Queue depth",
                region,
                [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q]
                    for q in (r.processing_queue_name, r.subscriber_queue_name)
                ],
                stat="Maximum",
            ),
            _widget(
                "Oldest message age (s)",
                region,
                [
                    ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q]
                    for q in (r.processing_queue_name, r.subscriber_queue_name)
                ],
                stat="Maximum",
            ),
            _widget(
                "Table capacity consumed",
                region,
                [
                    ["AWS/DynamoDB", m, "TableName", t]
                    for t in r.table_names
                    for m in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
                ],
            ),
            _widget(
                "Lambda throttles",
                region,
                [["AWS/Lambda", "Throttles", "FunctionName", n] for n in r.function_names],
            ),
            # Business figures: embedded metrics the handlers emit (Powertools Metrics).
            _widget(
                "Payments completed / failed per minute",
                region,
                [_business(m, r.processor_function_name) for m in PAYMENT_METRICS],
                period=PER_MINUTE,
            ),
            _widget(
                "Batch rows per minute",
                region,
                [_business(m, r.batch_tasks_function_name) for m in BATCH_ROW_METRICS],
                period=PER_MINUTE,
            ),
        ]
    }
