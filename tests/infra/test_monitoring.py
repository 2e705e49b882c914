"""Alarms (profiles with alarms on) and the dashboard (every profile)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription

from lib.api_spec import ROUTES
from lib.functions import FUNCTIONS
from lib.monitoring import RUNBOOK_SECTIONS

ROOT = Path(__file__).resolve().parents[2]


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
        for base in (
            "processing-dlq",
            "batch-trigger-dlq",
            "outbox-dlq",
            "payment-events-subscriber-dlq",
        ):
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

    def test_workflows_timed_out_aborted_or_throttled_alarm(self, production):
        alarms = _alarms(production)
        batch = production.settings.name("batch")
        for name, metric in (
            ("executions-timed-out", "ExecutionsTimedOut"),
            ("executions-aborted", "ExecutionsAborted"),
            ("execution-throttled", "ExecutionThrottled"),
        ):
            alarm = alarms[f"{batch}-{name}"]
            assert (alarm["namespace"], alarm["metric_name"]) == ("AWS/States", metric)
            assert alarm["threshold"] == 1

    def test_every_function_alarms_on_throttles_and_a_p99_near_its_timeout(self, production):
        alarms = _alarms(production)
        for key, spec in FUNCTIONS.items():
            name = production.settings.name(key)
            throttles = alarms[f"{name}-throttles"]
            assert throttles["metric_name"] == "Throttles"
            duration = alarms[f"{name}-p99-duration"]
            assert (duration["metric_name"], duration["extended_statistic"]) == ("Duration", "p99")
            assert 0 < duration["threshold"] < spec.timeout * 1000

    def test_uploads_lambda_could_not_deliver_alarm(self, production):
        alarms = _alarms(production)
        trigger = production.settings.name("batch-trigger")
        for name, metric in (
            ("dead-letter-errors", "DeadLetterErrors"),
            ("async-events-dropped", "AsyncEventsDropped"),
        ):
            alarm = alarms[f"{trigger}-{name}"]
            assert alarm["metric_name"] == metric
            assert alarm["dimensions"] == {"FunctionName": trigger}

    def test_work_waiting_too_long_on_a_queue_alarms(self, production):
        alarms = _alarms(production)
        processing = alarms[f"{production.settings.name('processing')}-oldest-message-age"]
        subscriber = alarms[
            f"{production.settings.name('payment-events-subscriber')}-oldest-message-age"
        ]
        for alarm in (processing, subscriber):
            assert alarm["metric_name"] == "ApproximateAgeOfOldestMessage"
            assert alarm["statistic"] == "Maximum"
        # Processing takes seconds; the stuck-payment sweep (minutes) must not be the first sign.
        assert processing["threshold"] < production.profile.stuck_after_minutes * 60
        assert subscriber["threshold"] > processing["threshold"]

    def test_events_sns_fails_to_deliver_alarm(self, production):
        alarms = _alarms(production)
        topic = production.settings.name("payment-events")
        for name in ("notifications-failed", "notifications-redriven-to-dlq"):
            alarm = alarms[f"{topic}-{name}"]
            assert alarm["namespace"] == "AWS/SNS"
            assert alarm["dimensions"] == {"TopicName": topic}

    def test_each_table_alarms_on_system_errors_and_transaction_conflicts(self, production):
        alarms = _alarms(production)
        for base in ("payments", "processing-status", "audit-log"):
            table = production.settings.table_name(base)
            errors = alarms[f"{table}-system-errors"]
            operations = {
                q["metric"]["dimensions"]["Operation"]
                for q in errors["metric_query"]
                if "metric" in q
            }
            assert {"TransactWriteItems", "UpdateItem", "PutItem", "GetItem"} <= operations
            (expression,) = [q["expression"] for q in errors["metric_query"] if "expression" in q]
            assert expression.count("FILL(") == len(operations)
            conflicts = alarms[f"{table}-transaction-conflicts"]
            assert conflicts["metric_name"] == "TransactionConflict"
            assert conflicts["evaluation_periods"] == 2

    def test_staging_has_the_same_alarms_as_production(self, production, staging):
        def shape(synth):
            suffix = synth.settings.suffix
            return {name.replace(suffix, "<suffix>") for name in _alarms(synth)}

        assert shape(staging) == shape(production)

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
            "Queue depth",
            "Oldest message age (s)",
            "Table capacity consumed",
            "Payments completed / failed per minute",
            "Batch rows per minute",
        } <= titles

    def test_business_figures_are_the_handlers_embedded_metrics_per_minute(self, each):
        dashboard = each.one(CloudwatchDashboard.TF_RESOURCE_TYPE)
        widgets = {
            w["properties"]["title"]: w["properties"]
            for w in json.loads(dashboard["dashboard_body"])["widgets"]
        }
        payments = widgets["Payments completed / failed per minute"]
        assert payments["period"] == 60
        assert {m[1] for m in payments["metrics"]} == {"PaymentsCompleted", "PaymentsFailed"}
        for metric in payments["metrics"]:
            assert metric[0] == "Payments"
            assert metric[2:] == [
                "service",
                "payments",
                "FunctionName",
                each.settings.name("processor"),
            ]
        rows = widgets["Batch rows per minute"]
        assert {m[1] for m in rows["metrics"]} >= {"BatchRows", "BatchRowsRejected"}
        assert all(m[-1] == each.settings.name("batch-tasks") for m in rows["metrics"])


class TestAlarmsPageSomeone:
    def test_every_alarm_says_what_is_wrong_and_links_its_runbook_section(self, production):
        runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
        sections = {
            re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
            for line in runbook.splitlines()
            if line.startswith("## ")
        }
        alarms = _alarms(production)
        assert len(alarms) > 40
        for name, alarm in alarms.items():
            what, _, link = alarm["alarm_description"].partition(". Runbook: docs/RUNBOOK.md#")
            assert len(what) > 20 and link in sections, (name, alarm["alarm_description"])
            assert len(alarm["alarm_description"]) <= 1024
        assert set(RUNBOOK_SECTIONS) == {
            a["alarm_description"].rpartition("#")[2] for a in alarms.values()
        }

    def test_production_pages_the_configured_subscribers(self, production, dev):
        subscriptions = [
            s
            for s in production.resources(SnsTopicSubscription.TF_RESOURCE_TYPE).values()
            if "alarms" in s["topic_arn"]
        ]
        assert sorted((s["protocol"], s["endpoint"]) for s in subscriptions) == [
            ("email", "oncall@example.com"),
            ("sqs", "arn:aws:sqs:us-east-1:123456789012:incidents"),
        ]
        assert not [
            s
            for s in dev.resources(SnsTopicSubscription.TF_RESOURCE_TYPE).values()
            if "alarms" in s["topic_arn"]
        ]

    def test_every_alarm_notifies_the_alarms_topic_when_it_fires_and_clears(self, production):
        for alarm in _alarms(production).values():
            assert alarm["alarm_actions"] == alarm["ok_actions"]
            assert [a for a in alarm["alarm_actions"] if "aws_sns_topic.messaging_alarms" in a]


class TestSlos:
    def test_the_apis_success_rate_is_held_to_the_profiles_slo(self, production, staging):
        for synth, slo in ((production, 99.9), (staging, 99.5)):
            alarm = _alarms(synth)[f"{synth.settings.name('api')}-success-rate-slo"]
            assert synth.profile.api_success_rate_slo == slo
            assert (alarm["comparison_operator"], alarm["threshold"]) == ("LessThanThreshold", slo)
            assert (alarm["evaluation_periods"], alarm["datapoints_to_alarm"]) == (6, 5)
            metrics = {q["id"]: q for q in alarm["metric_query"]}
            assert metrics["count"]["metric"]["metric_name"] == "Count"
            assert metrics["errors"]["metric"]["metric_name"] == "5XXError"
            assert metrics["success"]["expression"] == "100 * (1 - FILL(errors, 0) / count)"
            assert metrics["success"]["return_data"] is True

    def test_every_route_has_a_p99_latency_alarm_on_its_own_metrics(self, production):
        alarms = _alarms(production)
        api = production.settings.name("api")
        for route in ROUTES:
            route_name = re.sub(r"(?<!^)([A-Z])", r"-\1", route.operation_id).lower()
            alarm = alarms[f"{api}-{route_name}-p99-latency"]
            assert alarm["dimensions"]["Method"] == route.method
            assert alarm["dimensions"]["Resource"] == route.path
            assert alarm["extended_statistic"] == "p99"
            assert alarm["threshold"] == production.profile.api_p99_latency_ms


class TestGuardRules:
    def _rules(self, synth) -> dict[str, dict]:
        return {
            r["name"]: r for r in synth.resources(CloudwatchEventRule.TF_RESOURCE_TYPE).values()
        }

    def test_disabling_the_key_or_switching_off_pitr_or_deletion_protection_pages(
        self, production, dev
    ):
        rules = self._rules(production)
        name = production.settings.name
        key = json.loads(rules[name("guard-key")]["event_pattern"])
        assert key["detail"]["eventName"] == ["DisableKey", "ScheduleKeyDeletion"]
        assert key["detail"]["resources"]["ARN"][0].startswith("${aws_kms_key.")
        pitr = json.loads(rules[name("guard-pitr")]["event_pattern"])["detail"]
        assert pitr["eventName"] == ["UpdateContinuousBackups"]
        spec = pitr["requestParameters"]["pointInTimeRecoverySpecification"]
        assert spec == {"pointInTimeRecoveryEnabled": [False]}
        protection = json.loads(rules[name("guard-deletion-protection")]["event_pattern"])
        assert protection["detail"]["requestParameters"]["deletionProtectionEnabled"] == [False]
        for pattern in (pitr, protection["detail"]):
            assert len(pattern["requestParameters"]["tableName"]) == 6  # 3 names + 3 ARNs
        targets = production.resources(CloudwatchEventTarget.TF_RESOURCE_TYPE).values()
        assert len(targets) == 3
        for target in targets:
            assert "aws_sns_topic.messaging_alarms" in target["arn"]
            template = json.loads(target["input_transformer"]["input_template"])
            assert template.endswith("Runbook: docs/RUNBOOK.md#key-and-backups")
        runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
        assert "\n## Key and backups\n" in runbook
        assert self._rules(dev) == {}

    def test_only_this_environments_guard_rules_may_publish_to_the_alarms_topic(self, production):
        policies = production.resources("aws_sns_topic_policy")
        [alarms] = [p for p in policies.values() if "messaging_alarms" in p["arn"]]
        document = production.data("aws_iam_policy_document")[alarms["policy"].split(".")[2]]
        [guard] = [s for s in document["statement"] if s["sid"] == "GuardRulesOfThisEnvironment"]
        assert guard["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
        [condition] = guard["condition"]
        assert condition["test"] == "ArnLike"
        assert condition["values"][0].endswith(":rule/payments-guard-*-ci-prod")
