"""The payment platform end to end on the local cloud (``make demo`` runs it after ``local-up``).

Uploads a CSV batch with good, bad and duplicate rows, submits payments through the REST API (one
over the limit, one flagged by the signed fraud webhook, one replayed), waits for every payment to
reach a final state and prints what happened; then makes two API clients with ``make client``'s
code and shows that one cannot see the other's payment of the very same id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localcloud.client import HttpResponse, LocalCloud, wait_for  # noqa: E402
from localcloud.config import LocalCloudError  # noqa: E402

FINAL = {"COMPLETED", "FAILED"}
WAIT_SECONDS = 120


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text} " + "=" * max(0, 70 - len(text)))


def sample_csv(run: str) -> bytes:
    # Lines are numbered as the batch report numbers them: the header is line 1.
    rows = [
        "Payment_ID,Amount,Currency,Description",
        f"{run}-b1,125.50,USD,office chairs",
        f"{run}-b2,9800,JPY,train tickets",
        f"{run}-b3,12.345,KWD,three minor-unit digits",
        f"{run}-b4,1e3,USD,exponent: rejected",
        f"{run}-b5,10.00,XYZ,unknown currency: rejected",
        f"{run}-b6,-5.00,EUR,negative: rejected",
        f"{run}-b1,125.50,USD,same row again: duplicate",
        "",
        f"{run}-b7,2500000.00,EUR,over the limit: fails in processing",
        f'{run}-b8,"1,000.00",GBP,"quoted, with a thousands separator: rejected"',
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


def show_response(label: str, response: HttpResponse) -> None:
    body = response.json() if response.body else None
    brief = json.dumps(body)[:160] if body is not None else ""
    say(f"  {label:<44} -> {response.status} {brief}")


def payment_status(cloud: LocalCloud, payment_id: str) -> dict | None:
    response = cloud.request("GET", f"/payments/{payment_id}")
    return response.json() if response.status == 200 else None


def main() -> int:
    try:
        cloud = LocalCloud()
    except LocalCloudError as error:
        say(f"demo: {error}")
        return 2
    run = time.strftime("demo%H%M%S")
    batch_id = f"{run}-batch"
    say(f"Local cloud: API {cloud.api_url}, batch bucket s3://{cloud.batch_bucket}")

    heading("1. CSV batch upload")
    version = cloud.upload_batch(batch_id, sample_csv(run))
    say(f"  uploaded incoming/{batch_id}.csv (version {version})")

    heading("2. REST API")
    api_ids: dict[str, str] = {}
    normal_body = {"payment_id": f"{run}-api-1", "amount": "42.00", "currency": "usd"}
    normal = cloud.request("POST", "/payments", body=normal_body)
    show_response("POST /payments (normal)", normal)
    api_ids["normal"] = normal_body["payment_id"]
    replay = cloud.request("POST", "/payments", body=normal_body)
    show_response("POST /payments (same again: replay)", replay)
    over = cloud.request(
        "POST",
        "/payments",
        body={"payment_id": f"{run}-api-2", "amount": "1500000.00", "currency": "EUR"},
    )
    show_response("POST /payments (over the limit)", over)
    api_ids["over the limit"] = f"{run}-api-2"
    generated = cloud.request(
        "POST",
        "/payments",
        body={"amount": 19.99, "currency": "GBP", "description": "server-made id"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    show_response("POST /payments (no payment_id)", generated)
    if generated.status in (200, 202):
        api_ids["server-made id"] = generated.json()["payment_id"]
    flagged = cloud.request(
        "POST",
        "/payments",
        body={"payment_id": f"{run}-api-3", "amount": "310.00", "currency": "USD"},
    )
    show_response("POST /payments (to be flagged)", flagged)
    api_ids["fraud-flagged"] = f"{run}-api-3"
    webhook = cloud.signed_webhook(
        {"payment_id": f"{run}-api-3", "risk_score": 97, "reason": "card reported stolen"}
    )
    show_response("POST /fraud-webhook (signed)", webhook)
    unsigned = cloud.request(
        "POST",
        "/fraud-webhook",
        body={"payment_id": f"{run}-api-3", "risk_score": 1, "reason": "x"},
    )
    show_response("POST /fraud-webhook (unsigned)", unsigned)
    invalid = cloud.request("POST", "/payments", body={"amount": "12.3456", "currency": "USD"})
    show_response("POST /payments (4 decimals)", invalid)
    no_key = cloud.request("GET", f"/payments/{run}-api-1", api_key=None)
    show_response("GET /payments/{id} without x-api-key", no_key)

    heading("3. Waiting for the batch and every payment to finish")

    def batch_done() -> dict | None:
        response = cloud.request("GET", f"/batches/{batch_id}")
        body = response.json() if response.status == 200 else None
        return body if body and body.get("status") in FINAL else None

    def report(last: object, elapsed: float) -> None:
        if int(elapsed * 2) % 4 == 0:
            say(f"  ... {elapsed:4.1f}s")

    batch = wait_for(batch_done, timeout=WAIT_SECONDS, what=f"batch {batch_id}", progress=report)
    say(f"  batch {batch_id}: {batch['status']}")
    batch_ids = [f"{run}-b{n}" for n in (1, 2, 3, 7)]
    all_ids = {**api_ids, **{f"batch row {pid}": pid for pid in batch_ids}}

    def all_final() -> dict[str, dict] | None:
        states = {label: payment_status(cloud, pid) for label, pid in all_ids.items()}
        pending = [label for label, p in states.items() if not p or p["status"] not in FINAL]
        return None if pending else states

    payments = wait_for(
        all_final, timeout=WAIT_SECONDS, what="final payment states", progress=report
    )
    say(f"  all {len(payments)} payments are final")

    heading("4. Batch report")
    for key in ("status", "total_rows", "accepted", "rejected", "duplicates", "report_key"):
        say(f"  {key:<12} {batch.get(key)}")
    for row in batch.get("rejected_rows", []):
        say(f"  line {row['line']:>3}  {row.get('payment_id') or '-':<18} {row['reason']}")
    report_body = (
        cloud.client("s3")
        .get_object(Bucket=cloud.batch_bucket, Key=batch["report_key"])["Body"]
        .read()
    )
    say(
        f"  report object: {len(report_body)} bytes at s3://{cloud.batch_bucket}/{batch['report_key']}"
    )

    heading("5. Payments")
    say(f"  {'payment':<36} {'source':<6} {'amount':>14} {'status':<10} {'reason':<16} history")
    for label, payment in payments.items():
        history = " -> ".join(step["status"] for step in payment.get("history", []))
        amount = f"{payment['amount']} {payment['currency']}"
        say(
            f"  {payment['payment_id']:<36} {payment['source']:<6} {amount:>14} "
            f"{payment['status']:<10} {payment.get('reason') or '':<16} {history}   ({label})"
        )

    heading("6. One raw GET response")
    raw = cloud.request("GET", f"/payments/{run}-api-2")
    say(f"  HTTP {raw.status}")
    for name, value in raw.headers.items():
        say(f"  {name}: {value}")
    say()
    say("  " + json.dumps(raw.json(), indent=2).replace("\n", "\n  "))

    heading("7. Two API clients (make client)")
    return two_clients(cloud, run)


def client_command(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "client.py"), *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"demo: make client {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def two_clients(cloud: LocalCloud, run: str) -> int:
    names = [f"acme-{run}", f"globex-{run}"]
    keys = {}
    for name in names:
        out = client_command("add", name)
        keys[name] = next(
            line.split()[-1] for line in out.splitlines() if line.startswith("api key")
        )
        say(f'  make client ARGS="add {name}": key {keys[name][:6]}... (shown once)')
    try:
        body = {"payment_id": "order-1234", "amount": "25.00", "currency": "USD"}
        for name in names:
            made = cloud.request("POST", "/payments", body=body, api_key=keys[name])
            show_response(f"POST /payments order-1234 as {name}", made)
        mine = cloud.request("GET", "/payments/order-1234", api_key=keys[names[0]])
        show_response(f"GET /payments/order-1234 as {names[0]} (its own)", mine)
        globex_only = f"{run}-globex-only"
        cloud.request(
            "POST", "/payments", api_key=keys[names[1]],
            body={"payment_id": globex_only, "amount": "9.00", "currency": "EUR"},
        )  # fmt: skip
        theirs = cloud.request("GET", f"/payments/{globex_only}", api_key=keys[names[0]])
        show_response(f"GET {names[1]}'s payment as {names[0]}", theirs)
        say(client_command("list").rstrip().replace("\n", "\n  ").join(["  ", ""]))
        return 0 if theirs.status == 404 and mine.status == 200 else 1
    finally:
        for name in names:
            client_command("remove", name)


if __name__ == "__main__":
    sys.exit(main())
