"""``make chaos``: payments under injected faults on the local cloud; 0 lost, 0 duplicated, 0 stuck.

Run against a local cloud started in chaos mode (``LOCALCLOUD_CHAOS``, see docs/LOCALCLOUD.md):
a set fraction of the AWS calls the functions make fail (throttling, 500, a timeout *after* the
write committed) and now and then a function's worker is killed mid-invocation. Then:

1. API clients (a few threads) send ``--api-payments`` logical payments, half with a
   ``payment_id`` and half with only an ``Idempotency-Key``; on a 5xx, a 429 or a lost
   connection a client retries the very same request, as a real one would, and now and then
   (keyed requests) first sends the same key with a changed amount: refused with 409 when the
   first attempt had stored its payment, else the key's payment (the original then 409); never
   a second payment, never two 2xx for one key.
2. ``--batches`` CSV files of ``--rows`` rows each (a few bad and duplicate rows among them) are
   uploaded, one is uploaded again, and a corrected version of another (a tenth of its amounts
   changed) lands while its first run is in progress.
3. Drain: with the sweeper's threshold shortened to ``--stuck-after`` seconds (what an operator
   draining a fault does), run the sweeper's schedule now and then (``python -m localcloud
   schedule run``) until every payment is final or ``--timeout`` passes.
4. Count and reconcile: each answered request has exactly one stored payment equal to what the
   2xx answered; the API stored no payment nobody asked for; every batch completed with counters
   that add up; nothing is non-final; every audit entry's event reached the subscriber queue;
   a consumer applying the delivered events by version (docs/CONTRACT.md) ends equal to the
   table, and no payment's version was first delivered before the one below it.

Prints the counts; exits 1 when any of lost / duplicated / stuck / mismatched is not 0.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda")]

from payments.clients import stored_id_of  # noqa: E402
from payments.idempotency import payment_id_for_key  # noqa: E402

from localcloud.client import HttpResponse, LocalCloud  # noqa: E402

FINAL = {"COMPLETED", "FAILED"}
RETRYABLE = {429, 500, 502, 503, 504}
MAX_ATTEMPTS = 12  # of a GET
# How long a client keeps retrying one payment before it reports a failure to its user.
GIVE_UP_SECONDS = 120


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Answer:
    """What the platform answered a logical request with (its first 2xx), or why not."""

    request: dict[str, Any]
    key: str | None
    status: int | None = None
    payment: dict[str, Any] | None = None
    attempts: int = 0
    retried_statuses: list[int] = field(default_factory=list)
    # A client that, after a failed answer, sent the same key with a changed body (one cent
    # more): what that got. The key binds to the first request that stored a payment, so the
    # changed body is refused 409 when the first attempt had stored its payment, and is the
    # key's payment (2xx; the original then 409) when the first attempt failed before it did.
    changed_body_statuses: list[int] = field(default_factory=list)
    changed_payment: dict[str, Any] | None = None

    def settled(self, stored: dict[str, Any] | None) -> bool:
        """Answered as the contract allows: a 2xx; or a 409 because the changed body bound the
        key first (the key's payment, ``stored``, holds the changed amount; its own answer may
        have been lost)."""
        if self.status in (200, 202):
            return True
        return (
            self.status == 409
            and bool(self.changed_body_statuses)
            and stored is not None
            and Decimal(stored["amount"]) == Decimal(changed_body(self.request)["amount"])
        )


def changed_body(request: dict[str, Any]) -> dict[str, Any]:
    """The request a careless client sends again under the same key: one cent more."""
    changed = dict(request)
    changed["amount"] = str(Decimal(request["amount"]) + Decimal("0.01"))
    return changed


def send(cloud: LocalCloud, answer: Answer, rng: random.Random) -> Answer:
    """POST until a final answer, as a careful client would: the same body and key each time,
    backing off (jittered, at most 3 s, or as ``Retry-After`` says) on 5xx, 429 and a lost
    connection; giving up after ``GIVE_UP_SECONDS``."""
    headers = {"Idempotency-Key": answer.key} if answer.key else {}
    give_up = time.monotonic() + GIVE_UP_SECONDS
    attempt = 0
    while True:
        attempt += 1
        answer.attempts = attempt
        wait = min(0.1 * 2**attempt, 3) * rng.uniform(0.5, 1.5)
        try:
            response: HttpResponse = cloud.request(
                "POST", "/payments", body=answer.request, headers=headers
            )
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            answer.retried_statuses.append(0)
        else:
            if response.status in (200, 202):
                answer.status, answer.payment = response.status, response.json()
                return answer
            if response.status not in RETRYABLE:
                answer.status = response.status
                return answer
            answer.retried_statuses.append(response.status)
            if answer.key and not answer.changed_body_statuses and rng.random() < 0.3:
                try:
                    other = cloud.request(
                        "POST", "/payments", body=changed_body(answer.request), headers=headers
                    )
                    answer.changed_body_statuses.append(other.status)
                    if other.status in (200, 202):
                        answer.changed_payment = other.json()
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    answer.changed_body_statuses.append(0)
            retry_after = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
            if retry_after is not None and retry_after.isdigit():
                wait = int(retry_after) + rng.uniform(0, 0.5)
        if time.monotonic() + wait > give_up:
            return answer
        time.sleep(wait)


def requested_id(answer: Answer) -> str:
    """The payment a logical request names: its own id, or the one its key derives."""
    if answer.key is not None:
        return payment_id_for_key(answer.key)
    return str(answer.request["payment_id"])


def operator_error(cloud: LocalCloud, batch_id: str) -> str:
    """What an operator sees of a failed batch and a client does not: the error it recorded."""
    item = (
        cloud.client("dynamodb")
        .get_item(
            TableName=cloud.stack["processing_status_table_name"],
            Key={"pk": {"S": f"BATCH#{batch_id}"}, "sk": {"S": "SUMMARY"}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return item.get("error", {}).get("S", "")


def batch_file(batch_id: str, rows: int, rng: random.Random) -> tuple[bytes, int]:
    """A CSV of ``rows`` data rows: mostly good, some rejected, some repeated; and how many of
    them should be accepted."""
    lines = ["payment_id,amount,currency"]
    accepted = 0
    for i in range(rows):
        kind = rng.random()
        if kind < 0.02 and i:
            lines.append(lines[-1])  # a duplicate of the previous row
        elif kind < 0.04:
            lines.append(f"{batch_id}-{i},-1.00,USD")  # rejected: not positive
        else:
            lines.append(f"{batch_id}-{i},{rng.randint(1, 99999)}.{rng.randint(0, 99):02d},USD")
            accepted += 1
    return ("\n".join(lines) + "\n").encode(), accepted


def corrected_file(body: bytes, rng: random.Random) -> bytes:
    """The same rows with a tenth of the good ones' amounts changed."""
    lines = body.decode().splitlines()
    for i, line in enumerate(lines[1:], start=1):
        payment_id, amount, currency = line.split(",")
        if not amount.startswith("-") and rng.random() < 0.1:
            lines[i] = f"{payment_id},{rng.randint(1, 99999)}.{rng.randint(0, 99):02d},{currency}"
    return ("\n".join(lines) + "\n").encode()


def good_rows(body: bytes) -> dict[str, Decimal]:
    """payment_id -> amount of each valid row (its first occurrence)."""
    rows: dict[str, Decimal] = {}
    for line in body.decode().splitlines()[1:]:
        payment_id, amount, _ = line.split(",")
        if not amount.startswith("-"):
            rows.setdefault(payment_id, Decimal(amount))
    return rows


def stored_as_their_runs_file(
    files: dict[str, dict[str, bytes]], payments: list[dict[str, Any]]
) -> list[str]:
    """Every batch payment holds the amount of the file version whose run stored it."""
    problems = []
    for batch_id, versions in files.items():
        rows_of = {version: good_rows(body) for version, body in versions.items()}
        for payment in (p for p in payments if p.get("batch_id") == batch_id):
            expected = rows_of.get(payment.get("batch_run"), {}).get(payment["payment_id"])
            if expected is None or Decimal(payment["amount"]) != expected:
                problems.append(
                    f"{payment['payment_id']}: {payment['amount']} stored by run "
                    f"{payment.get('batch_run')}, whose file says {expected}"
                )
    return problems


def get_json(cloud: LocalCloud, path: str) -> dict[str, Any]:
    """GET with the retries a real client makes (5xx and lost connections are expected here)."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            response = cloud.request("GET", path)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            response = None
        if response is not None and response.status not in RETRYABLE:
            return response.json()
        time.sleep(min(0.1 * 2**attempt, 3))
    raise RuntimeError(f"GET {path} kept failing")


def shorten_stuck_threshold(cloud: LocalCloud, seconds: int) -> None:
    """What an operator draining a fault would do: let the sweeper take payments that rested
    ``seconds`` (the profile's 30 minutes would outlast the run)."""
    lambda_ = cloud.client("lambda")
    name = f"payments-sweeper-{cloud.stack['stage_name']}"
    variables = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lambda_.update_function_configuration(
        FunctionName=name,
        Environment={"Variables": {**variables, "STUCK_AFTER_SECONDS": str(seconds)}},
    )


def run_sweeper(cloud: LocalCloud) -> None:
    name = f"payments-sweeper-{cloud.stack['stage_name']}"
    subprocess.run(
        [sys.executable, "-m", "localcloud", "schedule", "run", name],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-payments", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000, help="data rows per batch file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to drain")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--stuck-after", type=int, default=60, help="the sweeper's threshold during the drain"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    cloud = LocalCloud()
    run = uuid.uuid4().hex[:8]
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    started = time.monotonic()
    say(f"chaos run {run} (seed {seed}): {args.api_payments} API payments from {args.clients} "
        f"clients, {args.batches} batches x {args.rows} rows")  # fmt: skip

    # -- batches first, so their rows are processed while the API traffic arrives ------------
    expected_batches: dict[str, tuple[int, int]] = {}
    files: dict[str, dict[str, bytes]] = {}  # each batch's uploads: version id -> content
    for b in range(args.batches):
        batch_id = f"chaos-{run}-{b}"
        body, accepted = batch_file(batch_id, args.rows, rng)
        files[batch_id] = {cloud.upload_batch(batch_id, body): body}
        if b == 0:  # the same file again: a new version whose stored rows are duplicates
            files[batch_id][cloud.upload_batch(batch_id, body)] = body
            accepted = 0
        expected_batches[batch_id] = (args.rows, accepted)
    if args.batches > 1:
        # A corrected file of a batch whose first version is being processed: its run takes
        # over mid-way; neither run may store a row with the other file's amount.
        time.sleep(2)
        racing = f"chaos-{run}-1"
        [first] = files[racing].values()
        corrected = corrected_file(first, rng)
        files[racing][cloud.upload_batch(racing, corrected)] = corrected

    # -- API payments through retrying clients -------------------------------------------------
    answers = []
    for i in range(args.api_payments):
        amount = str(Decimal(rng.randint(1, 5_000_000)) / 100)
        request: dict[str, Any] = {"amount": amount, "currency": rng.choice(["USD", "EUR", "GBP"])}
        key = None
        if i % 2:
            key = f"chaos-{run}-{i}"
        else:
            request["payment_id"] = f"chaos-{run}-api-{i}"
        answers.append(Answer(request=request, key=key))
    lock = threading.Lock()
    client_rngs = [random.Random(seed + n) for n in range(args.clients)]

    def client(n: int) -> None:
        for index in range(n, len(answers), args.clients):
            send(cloud, answers[index], client_rngs[n])
        with lock:
            say(f"  client {n} done")

    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        list(pool.map(client, range(args.clients)))
    sent_seconds = time.monotonic() - started
    retries = sum(a.attempts - 1 for a in answers)
    say(f"API: {len(answers)} requests in {sent_seconds:.0f}s, {retries} retries, "
        f"{sum(a.status not in (200, 202) for a in answers)} without a 2xx")  # fmt: skip

    # -- drain ------------------------------------------------------------------------------
    from payments.reconcile import Reconciler

    reconcile = _reconcile_module()
    config = reconcile._local_cloud()[0]
    reconciler = Reconciler(config)
    shorten_stuck_threshold(cloud, args.stuck_after)
    deadline = time.monotonic() + args.timeout
    sweeps = 0
    while True:
        payments = reconciler.payments_created(since, "9999")
        open_ = [p for p in payments if p["status"] not in FINAL]
        batches = {b: get_json(cloud, f"/batches/{b}") for b in expected_batches}
        running = [b for b, v in batches.items() if v.get("status") not in FINAL]
        say(f"  {time.monotonic() - started:5.0f}s: {len(payments)} payments, "
            f"{len(open_)} not final, {len(running)} batches running")  # fmt: skip
        if not open_ and not running:
            break
        if time.monotonic() > deadline:
            break
        run_sweeper(cloud)  # what the schedule does; it only takes payments resting a while
        sweeps += 1
        time.sleep(10)

    # -- count ------------------------------------------------------------------------------
    by_id = {p["payment_id"]: p for p in payments}
    unanswered = [a for a in answers if not a.settled(by_id.get(requested_id(a)))]
    lost, differs = [], []
    for answer in answers:
        for answered in (answer.payment, answer.changed_payment):
            if answered is None:
                continue
            stored = by_id.get(answered["payment_id"])
            if stored is None:
                lost.append(answered["payment_id"])
            elif (Decimal(stored["amount"]), stored["currency"]) != (
                Decimal(answered["amount"]),
                answered["currency"],
            ):
                differs.append(stored["payment_id"])
    # Every logical request names its payment: its own ``payment_id`` or the one its key derives.
    # A request never answered 2xx may still have stored it (the answer was what got lost);
    # only a payment no request names is a duplicate.
    requested = {requested_id(a): a for a in answers}
    api_stored = [p for p in payments if p.get("source") == "api"]
    duplicated = [p["payment_id"] for p in api_stored if p["payment_id"] not in requested]
    for payment in api_stored:
        asked = requested.get(payment["payment_id"])
        if (
            asked is not None
            and asked.payment is None
            and not asked.settled(payment)
            and (
                Decimal(payment["amount"]),
                payment["currency"],
            )
            != (Decimal(asked.request["amount"]), asked.request["currency"])
        ):
            differs.append(payment["payment_id"])
    stuck = [p["payment_id"] for p in payments if p["status"] not in FINAL]
    changed = [a for a in answers if a.changed_body_statuses]
    # Both bodies answered 2xx under one key would be two answers for one payment.
    changed_accepted = [
        f"key {a.key}: the original answered {a.status} and a changed body "
        f"{a.changed_body_statuses}"
        for a in changed
        if a.changed_payment is not None and a.payment is not None
    ]
    batch_problems = []
    for batch_id, (rows, accepted) in expected_batches.items():
        view = batches[batch_id]
        counted = view["accepted"] + view["rejected"] + view["duplicates"]
        if view["status"] != "COMPLETED" or view["total_rows"] != rows or counted != rows:
            batch_problems.append(
                f"{batch_id}: {view['status']} {view['total_rows']}/{counted} "
                f"{view.get('reason_code')} {operator_error(cloud, batch_id)}"
            )
        elif len(files[batch_id]) == 1 and view["accepted"] != accepted:
            batch_problems.append(f"{batch_id}: accepted {view['accepted']} != {accepted}")
    batch_problems += stored_as_their_runs_file(files, payments)
    queue = cloud.stack["payment_events_subscriber_queue_url"]
    published = reconcile.read_events(cloud.client("sqs"), queue)
    archived = reconcile.read_archive(config.audit_archive_bucket, payments, since)
    report = reconciler.check(
        payments, batch_ids=list(expected_batches), published=published, archive=archived
    )
    order_problems = event_order_problems(published, payments)

    say()
    say(f"== chaos {run} (seed {seed}) after {time.monotonic() - started:.0f}s ==")
    say(f"API requests answered 2xx:     {len(answers) - len(unanswered)} / {len(answers)}")
    say(f"client retries:                {retries}")
    say(f"batch rows:                    {sum(r for r, _ in expected_batches.values())}")
    say(f"payments stored:               {len(payments)}")
    say(f"lost (answered, not stored):   {len(lost)}")
    say(f"stored differs from answer:    {len(differs)}")
    say(f"duplicated (stored, unasked):  {len(duplicated)}")
    say(f"stuck (not final):             {len(stuck)}")
    refused = sum(1 for a in changed if 409 in a.changed_body_statuses)
    first = sum(1 for a in changed if a.changed_payment is not None)
    say(f"key reused with another body:  {len(changed)} sent, {refused} refused 409, "
        f"{first} bound the key (first attempt stored nothing), "
        f"{len(changed_accepted)} answered 2xx beside the original")  # fmt: skip
    say(f"batch problems:                {len(batch_problems)}")
    say(f"sweeper runs:                  {sweeps}")
    say(f"events seen / expected:        {report.events_seen} / {report.events_expected}")
    say(f"audit archive:                 {report.archived} entries agree in "
        f"{report.archive_objects} objects, {report.archive_pending} pending")  # fmt: skip
    say(f"reconcile mismatches:          {len(report.mismatches)}")
    say(f"event order (by version):      {len(order_problems)} problems")
    unanswered_lines = [
        f"{requested_id(a)}: {a.attempts} attempts, answers {a.status or a.retried_statuses}"
        for a in unanswered
    ]
    problems = unanswered_lines + changed_accepted + batch_problems + report.mismatches
    for line in (problems + order_problems)[:30]:
        say(f"  - {line}")
    bad = lost or differs or duplicated or stuck or batch_problems or report.mismatches
    bad = bad or order_problems or changed_accepted
    bad = bad or unanswered
    say("CHAOS PASSED" if not bad else "CHAOS FAILED")
    return 1 if bad else 0


def event_order_problems(
    published: list[dict[str, Any]], payments: list[dict[str, Any]]
) -> list[str]:
    """The consumer contract, checked on what the subscriber queue delivered, in its order.

    A consumer that drops an ``event_id`` it has seen and applies a payment's state event only
    when its ``version`` is higher than the one it holds ends with every payment's stored status
    and version. And the publisher never let a later version overtake an earlier one: each
    version's first delivery comes after the previous version's first delivery."""
    seen: set[str] = set()
    held: dict[str, tuple[int, str]] = {}
    first: dict[str, list[int]] = {}
    for event in published:
        if event.get("type") not in ("payment.received", "payment.status_changed"):
            continue
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        payment_id = stored_id_of(event)
        version = int(event["version"])
        first.setdefault(payment_id, []).append(version)
        if version > held.get(payment_id, (0, ""))[0]:
            held[payment_id] = (version, event["status"])
    problems = []
    for payment in payments:
        payment_id = payment["payment_id"]
        stored = (int(payment["version"]), payment["status"])
        if held.get(payment_id) != stored:
            problems.append(f"{payment_id}: consumer holds {held.get(payment_id)}, table {stored}")
        order = first.get(payment_id, [])
        if order != sorted(order):
            problems.append(f"{payment_id}: versions first delivered in the order {order}")
    return problems


def _reconcile_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("reconcile_script", ROOT / "scripts/reconcile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
