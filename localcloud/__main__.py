"""Command line: ``python -m localcloud {serve,up,down,status,schedule}``."""

from __future__ import annotations

import argparse
import sys

from localcloud.config import LocalCloudConfig, LocalCloudError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local cloud in the foreground")
    serve.add_argument("--port", type=int, help="AWS endpoint port (LOCALCLOUD_PORT)")
    serve.add_argument("--gateway-port", type=int, help="REST gateway port")
    commands.add_parser("up", help="start in the background and deploy the stack")
    commands.add_parser("down", help="stop what `up` started and remove .local/")
    commands.add_parser("status", help="say whether the local cloud is up")
    schedule = commands.add_parser("schedule", help="EventBridge Scheduler schedules")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True)
    run = schedule_commands.add_parser("run", help="invoke a schedule's target now")
    run.add_argument("name", help="the schedule's name, e.g. payments-sweeper-local")
    run.add_argument("--group", default="default", help="its schedule group (default: default)")
    schedule_commands.add_parser("list", help="the schedules and their expressions")
    args = parser.parse_args(argv)
    try:
        config = LocalCloudConfig.from_env()
        if args.command == "serve":
            from dataclasses import replace

            from localcloud.server import serve as run

            config = replace(
                config,
                port=args.port or config.port,
                gateway_port=args.gateway_port or config.gateway_port,
            )
            run(config)
            return 0
        if args.command == "schedule":
            return _schedule(config, args)
        from localcloud import deploy

        return {"up": deploy.up, "down": deploy.down, "status": deploy.status}[args.command](config)
    except LocalCloudError as exc:
        print(f"localcloud: {exc}", file=sys.stderr)
        return 2


def _schedule(config: LocalCloudConfig, args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from localcloud.services import scheduler

    try:
        if args.schedule_command == "run":
            target = scheduler.fire_now(config.endpoint_url, config.region, args.name, args.group)
            print(f"schedule {args.group}/{args.name}: invoked {target}")
            return 0
        client = scheduler.api_client(config.endpoint_url)("scheduler", config.region)
        for page in client.get_paginator("list_schedules").paginate():
            for summary in page["Schedules"]:
                full = client.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
                print(
                    f"{full['GroupName']}/{full['Name']}\t{full['State']}\t"
                    f"{full['ScheduleExpression']}\t{full['Target']['Arn']}"
                )
        return 0
    except (ClientError, BotoCoreError, scheduler.ScheduleError) as error:
        raise LocalCloudError(
            f"{error} (is the local cloud up at {config.endpoint_url}?)"
        ) from error


if __name__ == "__main__":
    sys.exit(main())
