"""``make erase``: remove one customer's personal data; amounts, statuses and the audit stay.

    make erase ARGS="--customer cust-1042 --dry-run"   # what would go
    make erase ARGS="--customer cust-1042"

Removes ``customer_id``, ``description`` and ``metadata`` from every payment made for the
customer, and every stored version of the uploaded files that held their rows; records the
erasure in the audit log (``ERASURE#<sha256 of customer:<id>>``, no id in clear), which the outbox
publishes as ``customer.erased`` (payments/erasure.py). Refuses, changing nothing, while a batch
holding one of the customer's payments still runs. A second run finds nothing and records
nothing.

Against AWS, export PAYMENTS_TABLE, PROCESSING_STATUS_TABLE, AUDIT_LOG_TABLE and BATCH_BUCKET
(the functions' names; the operator's role needs Scan and UpdateItem on the payments table,
GetItem on processing-status, PutItem on the audit log, s3:ListBucketVersions and
s3:DeleteObjectVersion on the batch bucket). On the local cloud (its ``outputs.json`` present)
everything comes from the deployment. Exits 1 when refused or on an error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from deployment import local_outputs  # noqa: E402
from payments import env, erasure  # noqa: E402
from payments.clients import CLIENT_ID, CLIENT_ID_RULE, DEFAULT_CLIENT  # noqa: E402
from payments.config import Config, load  # noqa: E402
from payments.errors import ConfigurationError  # noqa: E402


def _config() -> Config:
    stack = local_outputs()
    if stack is not None:
        return Config(
            environment="dev",
            payments_table=stack["payments_table_name"],
            processing_status_table=stack["processing_status_table_name"],
            audit_log_table=stack["audit_log_table_name"],
            batch_bucket=stack["batch_bucket_name"],
        )
    try:
        return load().require(
            env.PAYMENTS_TABLE, env.PROCESSING_STATUS_TABLE, env.AUDIT_LOG_TABLE, env.BATCH_BUCKET
        )
    except ConfigurationError as exc:
        raise SystemExit(f"erase: {exc} (or start the local cloud)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customer", required=True, help="the customer_id to erase")
    parser.add_argument(
        "--client",
        default=DEFAULT_CLIENT,
        help="the API client whose customer it is (customer ids are per client; default: default)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    args = parser.parse_args(argv)
    try:
        customer = erasure.customer_id(args.customer)
        if not CLIENT_ID.fullmatch(args.client):
            raise ValueError(f"--client {args.client!r} {CLIENT_ID_RULE}")
    except ValueError as exc:
        parser.error(str(exc))
    started = time.monotonic()
    eraser = erasure.Eraser(_config())
    digest = erasure.customer_digest(customer, args.client)
    print(f"erase: customer {digest[:16]}... (sha256 of customer:[<client>:]<id>)")
    result = (
        eraser.plan(customer, args.client) if args.dry_run else eraser.erase(customer, args.client)
    )
    print(f"payments found:        {len(result.payment_ids)}")
    print(f"batches with its rows: {len(result.batch_ids)}")
    if result.running:
        for batch_id in result.running:
            print(f"  - batch {batch_id} is still PROCESSING: run erase again once it ends")
        print(f"REFUSED, nothing changed, in {time.monotonic() - started:.1f}s")
        return 1
    if args.dry_run:
        for payment_id in result.payment_ids:
            print(f"  would erase payment {payment_id}")
        for batch_id in result.batch_ids:
            print(f"  would delete every version of the upload of batch {batch_id}")
        print(f"DRY RUN in {time.monotonic() - started:.1f}s")
        return 0
    print(f"payments erased:       {len(result.erased)}")
    print(f"upload versions gone:  {result.uploads_deleted}")
    if result.audit_sk:
        print(f"audited:               ERASURE#{digest} / {result.audit_sk} (customer.erased)")
    else:
        print("audited:               nothing to erase, nothing recorded")
    print(f"OK in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
