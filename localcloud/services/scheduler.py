"""EventBridge Scheduler for the local cloud: runs the schedules Terraform created in moto.

moto stores schedules (create, read, update and delete round-trip as the AWS provider needs) but
never runs them. ``Scheduler`` is a thread that does: every ``ENABLED`` schedule whose time has
come invokes its target the way EventBridge Scheduler does, through the target service's API at
the local endpoint — a Lambda function asynchronously (``InvocationType=Event``, so the Lambda
runner's async retries and dead-letter target apply), an SQS queue or an SNS topic — with the
target's ``Input`` as the payload and the context attributes (``<aws.scheduler.scheduled-time>``
and the others) filled in.

Expressions: ``rate(N minute|minutes|hour|hours|day|days)``, ``cron(...)`` with the six AWS fields
(``*``, ``?``, lists, ranges, steps, month and day names; not ``L``, ``W`` or ``#``) in the
schedule's time zone, and one-time ``at(yyyy-mm-ddThh:mm:ss)``. ``StartDate`` and ``EndDate`` are
honoured. Not emulated: flexible time windows (a schedule fires at the start of its window), the
target's retry policy and dead-letter queue (they cover failures to *call* the target, which the
local endpoint does not have), and ``ActionAfterCompletion``.

``LOCALCLOUD_SCHEDULE_SCALE`` multiplies rate periods (0.01 turns ``rate(5 minutes)`` into 3 s);
cron and at expressions keep wall-clock time. ``python -m localcloud schedule run NAME`` fires a
schedule now (``fire_now``), whatever its expression.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from localcloud.config import LOCAL_CREDENTIALS

log = logging.getLogger("localcloud.scheduler")

SCALE_VARIABLE = "LOCALCLOUD_SCHEDULE_SCALE"
TICK_SECONDS = 1.0
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# How far ahead a cron expression is searched for its next time.
CRON_HORIZON_DAYS = 5 * 366

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|hour|day)s?\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]  # AWS numbers them 1-7 from Sunday


class ScheduleError(ValueError):
    """An expression or target the local cloud cannot run."""


# -- expressions ----------------------------------------------------------------------------


def rate_seconds(expression: str) -> int | None:
    """The period of a ``rate(...)`` expression in seconds; None for other expressions."""
    match = _RATE.fullmatch(expression.strip())
    if not match:
        return None
    value = int(match.group(1))
    if value < 1:
        raise ScheduleError(f"{expression}: the rate must be a positive number")
    unit = match.group(2)
    if expression.strip().rstrip(")").rstrip().endswith("s") != (value != 1):
        # AWS insists: "rate(1 minute)", "rate(5 minutes)".
        raise ScheduleError(f"{expression}: use the singular unit for 1 and the plural otherwise")
    return value * UNIT_SECONDS[unit]


def _field(text: str, low: int, high: int, names: list[str] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise ScheduleError(f"cron step {step_text} must be positive")
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, low, names), _value(last, low, names)
        else:
            start = _value(part, low, names)
            end = high if step > 1 else start
        if not low <= start <= high or not low <= end <= high or start > end:
            raise ScheduleError(f"cron field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, low: int, names: list[str] | None) -> int:
    text = text.strip().upper()
    if names and text in names:
        return names.index(text) + low
    if not text.isdigit():
        # L, W and # (last, weekday, nth) among them.
        raise ScheduleError(f"cron value {text!r} is not supported by the local cloud")
    return int(text)


@dataclass(frozen=True)
class Cron:
    """The six fields of an EventBridge cron expression."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: "?"
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # None: "?"; 1 = Sunday
    years: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Cron | None:
        match = _CRON.fullmatch(expression.strip())
        if not match:
            return None
        fields = match.group(1).split()
        if len(fields) != 6:
            raise ScheduleError(f"{expression}: a cron expression has six fields")
        minute, hour, day, month, weekday, year = fields
        if (day == "?") == (weekday == "?"):
            raise ScheduleError(f"{expression}: exactly one of day-of-month and day-of-week is ?")
        return cls(
            minutes=_field(minute, 0, 59),
            hours=_field(hour, 0, 23),
            days_of_month=None if day == "?" else _field(day, 1, 31),
            months=_field(month, 1, 12, _MONTHS),
            days_of_week=None if weekday == "?" else _field(weekday, 1, 7, _DAYS),
            years=_field(year, 1970, 2199),
        )

    def _day_matches(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        assert self.days_of_week is not None
        return (day.weekday() + 1) % 7 + 1 in self.days_of_week

    def next_after(self, moment: datetime) -> datetime | None:
        """The first time strictly after ``moment`` (aware, in the schedule's zone)."""
        zone = moment.tzinfo
        day = moment.date()
        for _ in range(CRON_HORIZON_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(
                            day.year, day.month, day.day, hour, minute, tzinfo=zone
                        )
                        if candidate > moment:
                            return candidate
            day += timedelta(days=1)
        return None


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(f"unknown time zone {name!r}") from error


def _epoch(value: Any) -> float | None:
    """A StartDate/EndDate as moto stores what the client sent: epoch seconds or ISO 8601."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value)
    try:
        return float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def next_fire_time(
    schedule: dict[str, Any], after: float, *, scale: float = 1.0, anchor: float
) -> float | None:
    """When a schedule (as GetSchedule returns it) next fires after ``after`` (epoch seconds).

    ``anchor`` is when a rate schedule's period starts counting when it has no StartDate (its
    creation or last update). None: never again.
    """
    expression = schedule["ScheduleExpression"]
    start = _epoch(schedule.get("StartDate"))
    end = _epoch(schedule.get("EndDate"))
    zone = _zone(schedule.get("ScheduleExpressionTimezone"))
    period = rate_seconds(expression)
    if period is not None:
        period *= scale
        if start is not None:
            origin, offset = start, 0  # invocations on or after the start date
        else:
            origin, offset = anchor, 1
        if after < origin:
            due = origin + offset * period
        else:
            due = origin + period * (math.floor((after - origin) / period) + 1)
    elif (cron := Cron.parse(expression)) is not None:
        begin = max(after, start - 1e-6) if start is not None else after
        moment = cron.next_after(datetime.fromtimestamp(begin, zone))
        if moment is None:
            return None
        due = moment.timestamp()
    elif match := _AT.fullmatch(expression.strip()):
        # One-time schedules ignore StartDate and EndDate.
        moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)
        return moment.timestamp() if moment.timestamp() > after else None
    else:
        raise ScheduleError(f"{expression}: not a rate, cron or at expression")
    if end is not None and due > end:
        return None
    return due


# -- invoking the target ----------------------------------------------------------------------


def render_input(
    template: str | None,
    *,
    schedule_arn: str,
    scheduled_time: float,
    execution_id: str | None = None,
    attempt: int = 1,
) -> str:
    """The target's payload: its Input with EventBridge Scheduler's context attributes."""
    moment = datetime.fromtimestamp(scheduled_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": moment,
        "<aws.scheduler.execution-id>": execution_id or str(uuid.uuid4()),
        "<aws.scheduler.attempt-number>": str(attempt),
    }
    payload = "{}" if template is None else template
    for name, value in values.items():
        payload = payload.replace(name, value)
    return payload


def deliver(target: dict[str, Any], payload: str, client: Callable[[str, str], Any]) -> None:
    """Call the target's API as EventBridge Scheduler does; ``client(service, region)``."""
    arn = target["Arn"]
    parts = arn.split(":")
    if len(parts) < 6:
        raise ScheduleError(f"target {arn!r} is not an ARN")
    service, region, account = parts[2], parts[3], parts[4]
    if service == "lambda":
        client("lambda", region).invoke(
            FunctionName=arn, InvocationType="Event", Payload=payload.encode()
        )
    elif service == "sqs":
        sqs = client("sqs", region)
        url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=account)["QueueUrl"]
        extra = {}
        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        if group:
            extra = {"MessageGroupId": group, "MessageDeduplicationId": str(uuid.uuid4())}
        sqs.send_message(QueueUrl=url, MessageBody=payload, **extra)
    elif service == "sns":
        client("sns", region).publish(TopicArn=arn, Message=payload)
    else:
        raise ScheduleError(f"target {arn}: only Lambda, SQS and SNS targets run locally")


def api_client(endpoint_url: str) -> Callable[[str, str], Any]:
    """``client(service, region)`` for the local endpoint, one per pair."""
    import boto3
    from botocore.config import Config

    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def client(service: str, region: str) -> Any:
        with lock:
            if (service, region) not in clients:
                clients[service, region] = boto3.client(
                    service,
                    endpoint_url=endpoint_url,
                    region_name=region,
                    config=Config(retries={"max_attempts": 2}),
                    **LOCAL_CREDENTIALS,
                )
            return clients[service, region]

    return client


def fire(
    schedule: dict[str, Any], client: Callable[[str, str], Any], scheduled_time: float
) -> None:
    """One invocation of a schedule's target for ``scheduled_time``."""
    payload = render_input(
        schedule["Target"].get("Input"),
        schedule_arn=schedule["Arn"],
        scheduled_time=scheduled_time,
    )
    deliver(schedule["Target"], payload, client)


def fire_now(endpoint_url: str, region: str, name: str, group: str | None = None) -> str:
    """Fire a schedule at once through the local endpoint's APIs; returns its target ARN."""
    scheduler = api_client(endpoint_url)("scheduler", region)
    schedule = scheduler.get_schedule(Name=name, GroupName=group or "default")
    fire(schedule, api_client(endpoint_url), time.time())
    return schedule["Target"]["Arn"]


# -- the scheduler thread ---------------------------------------------------------------------


@dataclass
class _Plan:
    signature: tuple[Any, ...]
    due: float | None


class Scheduler:
    """Fires the ENABLED schedules of every account and region in moto when they are due."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        scale: float = 1.0,
        tick_seconds: float = TICK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if scale <= 0:
            raise ValueError("the schedule scale must be positive")
        self._client = api_client(endpoint_url)
        self._scale = scale
        self._tick_seconds = tick_seconds
        self._clock = clock
        self._plans: dict[str, _Plan] = {}
        self._broken: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self.fired: list[tuple[str, float]] = []  # (schedule ARN, scheduled time), newest last

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_seconds):
            try:
                self.tick()
            except Exception:  # the scheduler must outlive any one bad schedule
                log.exception("scheduler tick failed")

    @staticmethod
    def _schedules() -> list[Any]:
        from moto.scheduler.models import scheduler_backends

        found = []
        for regions in list(scheduler_backends.values()):
            for backend in list(regions.values()):
                for group in list(backend.schedule_groups.values()):
                    found.extend(list(group.schedules.values()))
        return found

    def tick(self) -> None:
        """Fire what is due now; the thread calls this every ``tick_seconds``."""
        now = self._clock()
        live = set()
        for model in self._schedules():
            schedule = model.to_dict()
            arn = schedule["Arn"]
            live.add(arn)
            if schedule.get("State") != "ENABLED":
                self._plans.pop(arn, None)
                continue
            plan = self._plan(model, schedule, now)
            if plan is None or plan.due is None or plan.due > now:
                continue
            scheduled = plan.due
            try:
                fire(schedule, self._client, scheduled)
                self.fired.append((arn, scheduled))
                del self.fired[:-100]
                log.info("schedule %s fired its target %s", arn, schedule["Target"]["Arn"])
            except Exception as error:  # reported once per schedule and target
                self._report(arn, schedule["Target"]["Arn"], error)
            # The next time after now: a scheduler that was held up does not catch up on runs.
            plan.due = next_fire_time(
                schedule, now, scale=self._scale, anchor=model.last_modified_date
            )
        for gone in set(self._plans) - live:
            del self._plans[gone]

    def _plan(self, model: Any, schedule: dict[str, Any], now: float) -> _Plan | None:
        arn = schedule["Arn"]
        signature = (
            schedule["ScheduleExpression"],
            schedule.get("ScheduleExpressionTimezone"),
            schedule.get("StartDate"),
            schedule.get("EndDate"),
            model.last_modified_date,
        )
        plan = self._plans.get(arn)
        if plan is None or plan.signature != signature:
            try:
                due = next_fire_time(
                    schedule, now, scale=self._scale, anchor=model.last_modified_date
                )
            except ScheduleError as error:
                self._report(arn, schedule["ScheduleExpression"], error)
                return None
            plan = self._plans[arn] = _Plan(signature, due)
        return plan

    def _report(self, arn: str, what: str, error: Exception) -> None:
        if (arn, what) not in self._broken:
            self._broken.add((arn, what))
            log.error("schedule %s does not run locally: %s", arn, error)
