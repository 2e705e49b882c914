"""``make client``: the API's clients, each with its own key and usage plan (payments.clients).

    make client ARGS="add acme"                        # prints the new key once
    make client ARGS="add fraud-provider --kind fraud-webhook"
    make client ARGS="add acme --rate 200 --burst 400 --quota 10000000"
    make client ARGS="list"
    make client ARGS="suspend acme"                    # refused within 30 s; resume undoes it
    make client ARGS="resume acme"
    make client ARGS="rotate-key acme"                 # prints the new key; the old one stops
    make client ARGS="remove acme"

Against AWS, export PROCESSING_STATUS_TABLE, API_ID and STAGE_NAME (the stack's
``processing_status_table_name``, ``api_id`` and ``stage_name`` outputs; the operator's role needs
GetItem, Query, PutItem, DeleteItem and TransactWriteItems on that table and the API Gateway key
and usage-plan calls). On the local cloud (its ``outputs.json`` present) everything comes from the
deployment. Exits 1 when refused or on an error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from deployment import local_outputs  # noqa: E402
from payments import aws, env  # noqa: E402
from payments.client_admin import ClientAdmin, ClientAdminError, Limits  # noqa: E402
from payments.clients import KIND_API, KINDS  # noqa: E402
from payments.config import Config  # noqa: E402
from payments.repository import Repository  # noqa: E402

API_ID = "API_ID"
STAGE_NAME = "STAGE_NAME"


def _admin() -> ClientAdmin:
    stack = local_outputs()
    if stack is not None:
        table, api_id, stage = (
            stack["processing_status_table_name"],
            stack["api_id"],
            stack["stage_name"],
        )
    else:
        names = (env.PROCESSING_STATUS_TABLE, API_ID, STAGE_NAME)
        values = [os.environ.get(name, "").strip() for name in names]
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise SystemExit(f"client: export {', '.join(missing)} (or start the local cloud)")
        table, api_id, stage = values
    repo = Repository(Config(environment="dev", processing_status_table=table))
    return ClientAdmin(repo, aws.client("apigateway"), api_id=api_id, stage=stage)


def _show(client: dict) -> str:
    limits = (
        f"rate {client['rate']}/s burst {client['burst']} quota {client['quota']}/day"
        if client.get("rate")
        else "the deployment's usage plan"
    )
    kind = client.get("kind", KIND_API)
    return f"{client['client_id']:<24} {kind:<14} {client['status']:<10} {limits}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="a new client; prints its key once")
    add.add_argument("client_id")
    add.add_argument("--kind", choices=KINDS, default=KIND_API)
    add.add_argument("--rate", type=int, default=Limits.rate, help="requests per second")
    add.add_argument("--burst", type=int, default=Limits.burst)
    add.add_argument("--quota", type=int, default=None, help="per day; default: rate all day")
    commands.add_parser("list", help="every client and its status")
    for name in ("suspend", "resume", "rotate-key", "remove"):
        commands.add_parser(name).add_argument("client_id")
    args = parser.parse_args(argv)
    try:
        admin = _admin()
        if args.command == "add":
            limits = Limits(rate=args.rate, burst=args.burst, quota=args.quota)
            client, key = admin.add(args.client_id, kind=args.kind, limits=limits)
            print(f"added   {_show(client)}")
            print(f"api key {key}")
            print("(shown once: hand it over now; make client ARGS='rotate-key ...' makes another)")
        elif args.command == "list":
            for client in admin.list():
                print(_show(client))
        elif args.command in ("suspend", "resume"):
            client = getattr(admin, args.command)(args.client_id)
            print(f"{args.command}d {_show(client)} (the API refuses or serves it within 30 s)")
        elif args.command == "rotate-key":
            client, key = admin.rotate_key(args.client_id)
            print(f"rotated {_show(client)}; the old key stops now")
            print(f"api key {key}")
        else:
            client = admin.remove(args.client_id)
            print(f"removed {client['client_id']}: key and usage plan gone, its payments stay")
    except ClientAdminError as exc:
        print(f"client: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
