"""EventBridge Scheduler on the local cloud: expressions and their next times, then schedules in
the patched moto firing their targets (moto stores schedules but never runs one)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from localcloud_support import RECORDING_HANDLER, recorded, wait_for

from localcloud.__main__ import main
from localcloud.config import LocalCloudConfig, LocalCloudError
from localcloud.services.scheduler import (
    Cron,
    ScheduleError,
    Scheduler,
    next_fire_time,
    rate_seconds,
    render_input,
)

pytestmark = pytest.mark.xdist_group("localcloud-scheduler")

HANDLER = RECORDING_HANDLER + "\ndef handler(event, context):\n    record(event)\n"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def schedule(expression: str, **fields) -> dict:
    return {"ScheduleExpression": expression, "ScheduleExpressionTimezone": "UTC", **fields}


class TestExpressions:
    @pytest.mark.parametrize(
        ("expression", "seconds"),
        [
            ("rate(1 minute)", 60),
            ("rate(5 minutes)", 300),
            ("rate(2 hours)", 7200),
            ("rate(1 day)", 86400),
        ],
    )
    def test_rate_periods(self, expression, seconds):
        assert rate_seconds(expression) == seconds

    @pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)"])
    def test_malformed_rates_are_refused(self, expression):
        with pytest.raises(ScheduleError):
            rate_seconds(expression)

    def test_a_rate_counts_from_the_schedule_creation(self):
        every_five = schedule("rate(5 minutes)")
        assert next_fire_time(every_five, 1000.0, anchor=1000.0) == 1300.0
        assert next_fire_time(every_five, 1299.0, anchor=1000.0) == 1300.0
        assert next_fire_time(every_five, 1300.0, anchor=1000.0) == 1600.0

    def test_the_scale_shortens_rate_periods(self):
        every_five = schedule("rate(5 minutes)")
        assert next_fire_time(every_five, 1000.0, anchor=1000.0, scale=0.01) == pytest.approx(1003)

    def test_a_start_date_is_the_first_time_and_an_end_date_the_last(self):
        hourly = schedule("rate(1 hour)", StartDate=at("2030-01-01T00:00:00"))
        assert next_fire_time(hourly, at("2029-06-01T00:00:00"), anchor=0) == at(
            "2030-01-01T00:00:00"
        )
        ending = schedule("rate(1 hour)", EndDate="2030-01-01T01:30:00Z")
        assert next_fire_time(ending, at("2030-01-01T00:30:00"), anchor=at("2029-12-31T23:00:00"))
        assert (
            next_fire_time(ending, at("2030-01-01T01:00:00"), anchor=at("2029-12-31T23:00:00"))
            is None
        )

    @pytest.mark.parametrize(
        ("expression", "after", "expected"),
        [
            # Saturday morning: the next weekday at nine is Monday.
            ("cron(0 9 ? * MON-FRI *)", "2026-11-28T10:00:00", "2026-11-30T09:00:00"),
            ("cron(*/15 * * * ? *)", "2026-11-28T10:07:00", "2026-11-28T10:15:00"),
            ("cron(0 12 1 JAN,JUL ? *)", "2026-11-28T10:00:00", "2027-01-01T12:00:00"),
            ("cron(30 2 * * ? 2027)", "2026-11-28T10:00:00", "2027-01-01T02:30:00"),
            # Day of week 1 is Sunday.
            ("cron(0 0 ? * 1 *)", "2026-11-28T10:00:00", "2026-11-29T00:00:00"),
        ],
    )
    def test_cron_next_times(self, expression, after, expected):
        assert next_fire_time(schedule(expression), at(after), anchor=0) == at(expected)

    def test_cron_runs_in_the_schedule_time_zone(self):
        nine_in_berlin = schedule("cron(0 9 * * ? *)", ScheduleExpressionTimezone="Europe/Berlin")
        # Winter time: UTC+1.
        assert next_fire_time(nine_in_berlin, at("2026-11-28T10:00:00"), anchor=0) == at(
            "2026-11-29T08:00:00"
        )

    @pytest.mark.parametrize(
        "expression",
        ["cron(0 0 L * ? *)", "cron(0 0 ? * 2#1 *)", "cron(0 0 * * * *)", "cron(0 0 * *)"],
    )
    def test_unsupported_or_malformed_cron_is_refused(self, expression):
        with pytest.raises(ScheduleError):
            Cron.parse(expression)

    def test_at_fires_once(self):
        once = schedule("at(2030-01-01T00:00:00)")
        assert next_fire_time(once, at("2029-01-01T00:00:00"), anchor=0) == at(
            "2030-01-01T00:00:00"
        )
        assert next_fire_time(once, at("2030-01-01T00:00:00"), anchor=0) is None

    def test_input_gets_the_context_attributes(self):
        payload = render_input(
            '{"arn": "<aws.scheduler.schedule-arn>", "at": "<aws.scheduler.scheduled-time>", '
            '"attempt": "<aws.scheduler.attempt-number>", "id": "<aws.scheduler.execution-id>"}',
            schedule_arn="arn:aws:scheduler:us-east-1:123456789012:schedule/default/s",
            scheduled_time=at("2030-01-01T00:05:00"),
        )
        values = json.loads(payload)
        assert values["arn"].endswith(":schedule/default/s")
        assert (values["at"], values["attempt"]) == ("2030-01-01T00:05:00Z", "1")
        assert len(values["id"]) == 36
        assert render_input(None, schedule_arn="a", scheduled_time=0) == "{}"

    def test_the_scale_comes_from_the_environment(self):
        assert LocalCloudConfig.from_env({}).schedule_scale == 1.0
        scaled = LocalCloudConfig.from_env({"LOCALCLOUD_SCHEDULE_SCALE": "0.01"})
        assert scaled.schedule_scale == 0.01
        for bad in ("0", "-1", "fast"):
            with pytest.raises(LocalCloudError, match="LOCALCLOUD_SCHEDULE_SCALE"):
                LocalCloudConfig.from_env({"LOCALCLOUD_SCHEDULE_SCALE": bad})


@pytest.fixture
def scheduler(cloud):
    """A scheduler on the test cloud whose rate(1 minute) is one second; schedules removed after."""
    running = Scheduler(endpoint_url=cloud.endpoint_url, scale=1 / 60, tick_seconds=0.1)
    running.start()
    yield running
    running.stop()
    client = cloud.client("scheduler")
    for page in client.get_paginator("list_schedules").paginate():
        for summary in page["Schedules"]:
            client.delete_schedule(Name=summary["Name"], GroupName=summary["GroupName"])


def create_schedule(cloud, name: str, target_arn: str, **extra) -> str:
    settings = {
        "ScheduleExpression": "rate(1 minute)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": target_arn,
            "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
            "Input": "{}",
        },
        **extra,
    }
    return cloud.client("scheduler").create_schedule(Name=name, **settings)["ScheduleArn"]


def recording_function(cloud, tmp_path, name: str):
    record_file = tmp_path / f"{name}.jsonl"
    arn = cloud.create_function(
        name, HANDLER, Environment={"Variables": {"RECORD_FILE": str(record_file)}}
    )
    return arn, record_file


class TestSchedules:
    def test_an_enabled_rate_schedule_invokes_its_function_with_its_input(
        self, cloud, tmp_path, scheduler
    ):
        function, record_file = recording_function(cloud, tmp_path, "swept")
        arn = create_schedule(
            cloud,
            "sweeper",
            function,
            Target={
                "Arn": function,
                "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                "Input": '{"schedule": "<aws.scheduler.schedule-arn>", '
                '"at": "<aws.scheduler.scheduled-time>"}',
            },
        )
        events = wait_for(lambda: len(recorded(record_file)) >= 2 and recorded(record_file))
        assert {e["schedule"] for e in events} == {arn}
        assert len({e["at"] for e in events}) == len(events)
        assert all(e["at"].endswith("Z") for e in events)

    def test_a_disabled_schedule_fires_once_enabled(self, cloud, tmp_path, scheduler):
        function, record_file = recording_function(cloud, tmp_path, "paused")
        create_schedule(cloud, "paused", function, State="DISABLED")
        time.sleep(1.5)  # a second is the scaled period
        assert recorded(record_file) == []
        assert scheduler.fired == []
        cloud.client("scheduler").update_schedule(
            Name="paused",
            ScheduleExpression="rate(1 minute)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": function, "RoleArn": "arn:aws:iam::123456789012:role/scheduler"},
            State="ENABLED",
        )
        assert wait_for(lambda: recorded(record_file))[0] == {}

    def test_an_sqs_target_gets_the_input_as_its_message(self, cloud, scheduler):
        url, queue_arn = cloud.create_queue("scheduled")
        create_schedule(
            cloud,
            "to-queue",
            queue_arn,
            Target={
                "Arn": queue_arn,
                "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                "Input": '{"sweep": true}',
            },
        )
        sqs = cloud.client("sqs")
        messages = wait_for(lambda: sqs.receive_message(QueueUrl=url).get("Messages"))
        assert json.loads(messages[0]["Body"]) == {"sweep": True}

    def test_schedule_run_fires_a_schedule_now(self, cloud, tmp_path, monkeypatch, capsys):
        function, record_file = recording_function(cloud, tmp_path, "on-demand")
        create_schedule(
            cloud,
            "on-demand",
            function,
            ScheduleExpression="rate(1 day)",
            Target={
                "Arn": function,
                "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                "Input": '{"manual": true}',
            },
        )
        monkeypatch.setenv("LOCALCLOUD_PORT", str(cloud.port))
        assert main(["schedule", "run", "on-demand"]) == 0
        assert wait_for(lambda: recorded(record_file)) == [{"manual": True}]
        assert f"invoked {function}" in capsys.readouterr().out
        assert main(["schedule", "list"]) == 0
        assert "default/on-demand\tENABLED\trate(1 day)" in capsys.readouterr().out
        cloud.client("scheduler").delete_schedule(Name="on-demand")

    def test_schedule_run_of_an_unknown_schedule_says_so(self, cloud, monkeypatch, capsys):
        monkeypatch.setenv("LOCALCLOUD_PORT", str(cloud.port))
        assert main(["schedule", "run", "no-such-schedule"]) == 2
        assert "no-such-schedule" in capsys.readouterr().err
