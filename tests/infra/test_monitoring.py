"""Alarms (profiles with alarms on) and the dashboard (every profile)."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm

from lib.functions import FUNCTIONS


def _alarms(synth) -> dict[str, dict]:
    return {
        a["alarm_name"]: a for a in synth.resources(CloudwatchMetricAlarm.TF_RESOURCE_TYPE).values()
    }


class TestAlarms:
    def test_dev_has_no_alarms(self, dev):
        assert dev.profile.alarms_enabled is False
        assert _alarms(dev) == {}

    def test_every_function_alarms_on_five_errors_in_ten_minutes(self, production):
        alarms = _alarms(production)
        for key in FUNCTIONS:
            alarm = alarms[f"{production.settings.name(key)}-errors"]
            assert (alarm["metric_name"], alarm["namespace"]) == ("Errors", "AWS/Lambda")
            assert (
                alarm["threshold"] == 5
                and alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"
            )
            assert alarm["period"] * alarm["evaluation_periods"] == 600

    def test_any_message_in_a_dlq_alarms(self, production):
        alarms = _alarms(production)
        for base in ("processing-dlq", "batch-trigger-dlq", "outbox-dlq"):
            alarm = alarms[f"{production.settings.name(base)}-not-empty"]
            assert alarm["metric_name"] == "ApproximateNumberOfMessagesVisible"
            assert alarm["threshold"] == 1

    def test_api_5xx_and_p99_latency(self, production):
        alarms = _alarms(production)
        api = production.settings.name("api")
        errors = alarms[f"{api}-5xx"]
        assert (errors["metric_name"], errors["threshold"], errors["period"]) == (
            "5XXError",
            10,
            600,
        )
        latency = alarms[f"{api}-p99-latency"]
        assert latency["extended_statistic"] == "p99"
        assert latency["threshold"] == production.profile.api_p99_latency_ms
        assert latency["dimensions"] == {"ApiName": api, "Stage": production.settings.suffix}

    def test_each_table_alarms_on_throttling(self, production):
        alarms = _alarms(production)
        for base in ("payments", "processing-status", "audit-log"):
            alarm = alarms[f"{production.settings.table_name(base)}-throttles"]
            metrics = {q["metric"]["metric_name"] for q in alarm["metric_query"] if "metric" in q}
            assert metrics == {"ReadThrottleEvents", "WriteThrottleEvents"}
            (expression,) = [q["expression"] for q in alarm["metric_query"] if "expression" in q]
            # Reads alone or writes alone must alarm too.
            assert expression == "FILL(reads, 0) + FILL(writes, 0)"

    def test_the_sweeper_finding_work_in_two_runs_in_a_row_alarms(self, production, staging):
        for synth in (production, staging):
            sweeper = synth.settings.name("sweeper")
            for metric in ("StuckPayments", "TimedOutBatches"):
                alarm = _alarms(synth)[f"{sweeper}-{metric}"]
                assert (alarm["namespace"], alarm["metric_name"]) == ("Payments", metric)
                assert alarm["dimensions"] == {"service": "payments", "FunctionName": sweeper}
                # One period per sweep, two breaching periods in a row.
                assert alarm["period"] == synth.profile.sweep_rate_minutes * 60
                assert alarm["evaluation_periods"] == alarm["datapoints_to_alarm"] == 2
                assert alarm["threshold"] == 1

    def test_failed_batch_workflows_alarm(self, production):
        alarm = _alarms(production)[f"{production.settings.name('batch')}-executions-failed"]
        assert alarm["metric_name"] == "ExecutionsFailed"

    def test_every_alarm_notifies_the_alarms_topic(self, production, staging):
        for synth in (production, staging):
            for alarm in _alarms(synth).values():
                assert alarm["alarm_actions"] == [alarm["alarm_actions"][0]]
                assert alarm["alarm_actions"][0].startswith("${aws_sns_topic.messaging_alarms_")


class TestDashboard:
    def test_every_profile_has_a_dashboard_of_the_alarmed_metrics(self, each):
        dashboard = each.one(CloudwatchDashboard.TF_RESOURCE_TYPE)
        assert dashboard["dashboard_name"] == each.settings.name("overview")
        titles = {
            w["properties"]["title"] for w in json.loads(dashboard["dashboard_body"])["widgets"]
        }
        assert {
            "Lambda errors",
            "Dead-letter queues",
            "API latency p99",
            "DynamoDB throttles",
            "Batch workflow",
        } <= titles
