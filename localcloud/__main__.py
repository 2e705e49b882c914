"""Command line: ``python -m localcloud {serve,up,down,status}``."""

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
        from localcloud import deploy

        return {"up": deploy.up, "down": deploy.down, "status": deploy.status}[args.command](config)
    except LocalCloudError as exc:
        print(f"localcloud: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
