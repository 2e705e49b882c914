"""``make soak``: one large batch file while API payments arrive, through the local cloud's server.

On a running local cloud (``make soak`` starts a fresh one and stops it afterwards):

1. a CSV of ``--rows`` data rows is generated (every ``REJECT_EVERY``-th row has a bad amount and
   every ``DUPLICATE_EVERY``-th repeats the row before it, so the expected counts are known) and
   uploaded to the batch bucket;
2. at the same time ``--clients`` threads send ``--api-payments`` payments to ``POST /payments``
   (a 5xx, a 429 or a lost connection is retried with the same ``payment_id``, like a client);
3. the batch is polled until ``COMPLETED``, then the processing queue and the payments table's
   ``pending-index`` until no payment is left non-final;
4. while that runs the server's resident memory is sampled from ``/proc``, and a subscriber
   consumes the ``payment-events`` subscriber queue as a deployment's consumer would.

Then it counts: the batch's ``total_rows``/``accepted``/``rejected``/``duplicates`` against the
file, the payments the batch stored (each row once, each final), each API payment stored as
answered, and reconciles histories, audit entries and the events the subscriber received
with ``payments.reconcile`` as ``make reconcile`` does. Prints the timings, rows/s and the RSS
curve; exits 1 when a row is lost or counted twice, a payment is left non-final or the books
disagree.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import urllib.error
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda")]

from chaos import _reconcile_module  # noqa: E402  (scripts/ is this script's sys.path[0])

from localcloud.client import LocalCloud  # noqa: E402
from localcloud.config import LocalCloudConfig  # noqa: E402

FINAL = {"COMPLETED", "FAILED"}
RETRYABLE = {429, 500, 502, 503, 504}
MAX_ATTEMPTS = 12
# Deliberate defects in the file: every REJECT_EVERY-th row has a negative amount, every
# DUPLICATE_EVERY-th repeats the row before it (the two never coincide: both are primes).
REJECT_EVERY = 997
DUPLICATE_EVERY = 1009
RSS_SAMPLE_SECONDS = 2.0
# Threads of the soak's ``payment-events`` consumer, and how long one waits after a receive
# that found fewer than ten messages.
SUBSCRIBER_READERS = 4
SUBSCRIBER_PAUSE_SECONDS = 0.5


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class BatchFile:
    batch_id: str
    body: bytes
    rows: int
    accepted: int
    rejected: int
    duplicates: int


def batch_file(batch_id: str, rows: int, seed: int) -> BatchFile:
    """``rows`` data rows with known defects; amounts are decimal text, never floats."""
    rng = random.Random(seed)
    lines = ["payment_id,amount,currency"]
    rejected = duplicates = 0
    for i in range(1, rows + 1):
        if i % DUPLICATE_EVERY == 0 and i > 1:
            lines.append(lines[-1])
            # The repeated row counts as a duplicate only if the row it repeats was accepted.
            if lines[-2].split(",")[1].startswith("-"):
                rejected += 1
            else:
                duplicates += 1
        elif i % REJECT_EVERY == 0:
            lines.append(f"{batch_id}-{i},-1.00,USD")
            rejected += 1
        else:
            amount = f"{rng.randint(1, 99_999)}.{rng.randint(0, 99):02d}"
            lines.append(f"{batch_id}-{i},{amount},{rng.choice(('USD', 'EUR', 'GBP'))}")
    body = ("\n".join(lines) + "\n").encode()
    accepted = rows - rejected - duplicates
    return BatchFile(batch_id, body, rows, accepted, rejected, duplicates)


class RssSampler(threading.Thread):
    """The server's resident set size every few seconds, from ``/proc/<pid>/status``."""

    def __init__(self, pid: int, started: float) -> None:
        super().__init__(name="rss", daemon=True)
        self.pid = pid
        self.started = started
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def rss_mb(self) -> int | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
        return None

    def run(self) -> None:
        while not self._halt.is_set():
            rss = self.rss_mb()
            if rss is not None:
                self.samples.append((time.monotonic() - self.started, rss))
            self._halt.wait(RSS_SAMPLE_SECONDS)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def curve(self, points: int = 12) -> str:
        if not self.samples:
            return "(no samples)"
        step = max(1, len(self.samples) // points)
        picked = self.samples[::step]
        if picked[-1] != self.samples[-1]:
            picked.append(self.samples[-1])
        return "  ".join(f"{t:.0f}s {mb} MB" for t, mb in picked)


class EventSubscriber:
    """A consumer of ``payment-events``, as a deployment has: it drains the subscriber queue
    while the soak runs (so the local cloud holds the events in flight, not every event ever
    published) and keeps each event's owner and ``event_id`` for the reconcile. Several readers
    share the queue, as a consumer's workers would; one alone falls behind the platform's three
    events per payment, and the backlog's messages then fill the server's memory."""

    def __init__(self, sqs: Any, queue_url: str, readers: int = SUBSCRIBER_READERS) -> None:
        self.event_of = _reconcile_module().event_of
        self.sqs = sqs
        self.queue_url = queue_url
        self.events: list[dict[str, str | None]] = []
        self._halt = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, name=f"subscriber-{n}", daemon=True)
            for n in range(readers)
        ]

    def start(self) -> None:
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        empty = 0
        # After ``stop`` it reads on until the queue answers empty a few times (SQS samples a
        # subset of its servers per receive), so every event published by then is counted.
        while not self._halt.is_set() or empty < 3:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            empty = 0 if got else empty + 1
            if len(got) < 10:
                # Caught up: let events gather for a moment, so that reading them costs the
                # server one receive and one delete per ten, not per one or two.
                self._halt.wait(SUBSCRIBER_PAUSE_SECONDS)
            if not got:
                continue
            for message in got:
                event = self.event_of(message)
                self.events.append(
                    {name: event.get(name) for name in ("event_id", "payment_id", "batch_id")}
                )
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ],
            )

    def stop(self) -> None:
        self._halt.set()
        for reader in self._readers:
            reader.join()


@dataclass
class ApiPayment:
    request: dict[str, Any]
    status: int | None = None
    answer: dict[str, Any] | None = None
    attempts: int = 0
    seconds: float = 0.0
    retried: list[int] = field(default_factory=list)


def send(cloud: LocalCloud, payment: ApiPayment) -> None:
    began = time.monotonic()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        payment.attempts = attempt
        try:
            response = cloud.request("POST", "/payments", body=payment.request)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            payment.retried.append(0)
        else:
            if response.status not in RETRYABLE:
                payment.status = response.status
                payment.answer = response.json()
                break
            payment.retried.append(response.status)
        time.sleep(min(0.1 * 2**attempt, 3))
    payment.seconds = time.monotonic() - began


def server_pid(config: LocalCloudConfig) -> int:
    return int(config.pid_file.read_text().split()[0])


def count_pending(dynamodb: Any, table: str) -> int:
    """Payments not yet final: the sparse ``pending-index`` holds exactly those."""
    from payments.repository import PENDING_INDEX, PENDING_SHARDS

    total = 0
    for shard in range(PENDING_SHARDS):
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "pending_shard = :s",
            "ExpressionAttributeValues": {":s": {"S": str(shard)}},
            "Select": "COUNT",
        }
        while True:
            page = dynamodb.query(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return total


def queue_depth(sqs: Any, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="data rows in the batch file")
    parser.add_argument("--api-payments", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds until all final")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--events",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="consume the published events while the soak runs and reconcile them (default)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.api_payments < 0 or args.clients < 1:
        parser.error("--rows and --clients must be at least 1, --api-payments at least 0")
    check_events = args.events is not False
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    config = LocalCloudConfig.from_env()
    cloud = LocalCloud(config)
    dynamodb, sqs = cloud.client("dynamodb"), cloud.client("sqs")
    payments_table = cloud.stack["payments_table_name"]
    queue_url = cloud.stack["processing_queue_url"]
    run = uuid.uuid4().hex[:8]
    batch = batch_file(f"soak-{run}", args.rows, seed)
    rng = random.Random(seed + 1)
    api = [
        ApiPayment(
            {
                "payment_id": f"soak-{run}-api-{i}",
                "amount": str(Decimal(rng.randint(1, 5_000_000)) / 100),
                "currency": rng.choice(["USD", "EUR", "JPY"]),
            }
        )
        for i in range(args.api_payments)
    ]
    for payment in api:
        if payment.request["currency"] == "JPY":  # no minor units
            payment.request["amount"] = str(Decimal(payment.request["amount"]).to_integral())
    say(f"soak {run} (seed {seed}): {batch.rows:,} rows ({batch.accepted:,} good, "
        f"{batch.rejected} bad, {batch.duplicates} repeated) + {len(api):,} API payments "
        f"from {args.clients} clients")  # fmt: skip

    started = time.monotonic()
    sampler = RssSampler(server_pid(config), started)
    sampler.start()
    subscriber = None
    events_url = cloud.stack["payment_events_subscriber_queue_url"]
    if check_events:
        subscriber = EventSubscriber(sqs, events_url)
        subscriber.start()
    cloud.upload_batch(batch.batch_id, batch.body)
    uploaded = time.monotonic() - started
    clients = ThreadPoolExecutor(max_workers=args.clients, thread_name_prefix="client")
    sent = [clients.submit(send, cloud, payment) for payment in api]

    completed_at = api_done_at = final_at = None
    view: dict[str, Any] = {}
    deadline = started + args.timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic() - started
        if completed_at is None:
            response = cloud.request("GET", f"/batches/{batch.batch_id}")
            view = response.json() if response.status == 200 else {}
            if view.get("status") in FINAL:
                completed_at = now
                say(f"  {now:6.1f}s batch {view['status']}")
        if api_done_at is None and all(future.done() for future in sent):
            api_done_at = now
            say(f"  {now:6.1f}s API clients done")
        settled = completed_at is not None and api_done_at is not None
        if (
            settled
            and queue_depth(sqs, queue_url) == 0
            and count_pending(dynamodb, payments_table) == 0
        ):
            final_at = time.monotonic() - started
            say(f"  {final_at:6.1f}s every payment final")
            break
        if now - last_report >= 15:
            last_report = now
            depth = queue_depth(sqs, queue_url)
            events = "" if subscriber is None else f", events {queue_depth(sqs, events_url):,}"
            say(f"  {now:6.1f}s queue {depth:,}{events}, server {sampler.rss_mb()} MB")
        time.sleep(1.0 if completed_at is None else 2.0)
    clients.shutdown(wait=True)
    sampler.stop()
    return report(cloud, args, batch, api, view, sampler, subscriber,
                  uploaded=uploaded, completed_at=completed_at, api_done_at=api_done_at,
                  final_at=final_at)  # fmt: skip


def report(
    cloud: LocalCloud,
    args: argparse.Namespace,
    batch: BatchFile,
    api: list[ApiPayment],
    view: dict[str, Any],
    sampler: RssSampler,
    subscriber: EventSubscriber | None,
    *,
    uploaded: float,
    completed_at: float | None,
    api_done_at: float | None,
    final_at: float | None,
) -> int:
    from payments.reconcile import Reconciler

    reconcile = _reconcile_module()
    config = reconcile._local_cloud()[0]
    reconciler = Reconciler(config)
    checked = time.monotonic()
    problems: list[str] = []
    if view.get("status") != "COMPLETED":
        problems.append(f"batch {batch.batch_id} is {view.get('status')!r}, not COMPLETED")
    else:
        counted = (view["total_rows"], view["accepted"], view["rejected"], view["duplicates"])
        expected = (batch.rows, batch.accepted, batch.rejected, batch.duplicates)
        if counted != expected:
            problems.append(f"batch counts (total, accepted, rejected, duplicates) {counted} "
                            f"!= file {expected}")  # fmt: skip
    stored = reconciler.payments_of_batch(batch.batch_id)
    ids = [p["payment_id"] for p in stored]
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} batch payments stored twice")
    if len(set(ids)) != batch.accepted:
        problems.append(f"{len(set(ids)):,} batch payments stored, the file has {batch.accepted:,}")
    answered = [p for p in api if p.status in (200, 202)]
    if len(answered) != len(api):
        problems.append(f"{len(api) - len(answered)} API payments without a 2xx")
    api_stored = []
    for payment in answered:
        item = reconciler.repo.get_payment(payment.request["payment_id"])
        if item is None:
            problems.append(f"API payment {payment.request['payment_id']} answered, not stored")
        elif Decimal(item["amount"]) != Decimal(payment.request["amount"]):
            problems.append(f"API payment {payment.request['payment_id']} stored differently")
        else:
            api_stored.append(item)
    everything = stored + api_stored
    not_final = [p["payment_id"] for p in everything if p["status"] not in FINAL]
    if not_final:
        problems.append(f"{len(not_final)} payments not final, e.g. {not_final[:3]}")
    published = None
    if subscriber is not None:
        subscriber.stop()
        published = subscriber.events
    archived = reconcile.read_archive(config.audit_archive_bucket, everything, None)
    books = reconciler.check(
        everything, batch_ids=[batch.batch_id], published=published, archive=archived
    )
    problems += books.mismatches
    check_seconds = time.monotonic() - checked

    latencies = sorted(p.seconds for p in answered)
    peak = max((mb for _, mb in sampler.samples), default=0)
    say()
    say(f"== soak {batch.batch_id}: {batch.rows:,} rows + {len(api):,} API payments ==")
    say(f"upload:                       {uploaded:.1f}s")
    if completed_at is not None:
        say(f"batch COMPLETED after:        {completed_at:.1f}s "
            f"({batch.rows / completed_at:,.0f} rows/s)")  # fmt: skip
    else:
        say("batch COMPLETED after:        not within the timeout")
    if api_done_at is not None and latencies:
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        say(f"API payments answered after:  {api_done_at:.1f}s (p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, {sum(p.attempts - 1 for p in api)} retries)")  # fmt: skip
    if final_at is not None:
        total = batch.accepted + len(answered)
        say(f"every payment final after:    {final_at:.1f}s "
            f"({total / final_at:,.0f} payments/s)")  # fmt: skip
    else:
        say("every payment final after:    not within the timeout")
    say(f"server RSS peak:              {peak:,} MB")
    say(f"server RSS over time:         {sampler.curve()}")
    say(f"payments stored:              {len(set(ids)):,} batch + {len(api_stored):,} API")
    for line in books.lines():
        say(line)
    say(f"checked in:                   {check_seconds:.1f}s")
    for line in problems[:30]:
        say(f"  - {line}")
    say("SOAK PASSED" if not problems and final_at is not None else "SOAK FAILED")
    return 0 if not problems and final_at is not None else 1


if __name__ == "__main__":
    sys.exit(main())
