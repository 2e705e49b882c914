"""``make rollback``: point the API's ``live`` alias at an earlier version, and keep it there
across deploys until released.

    make rollback                         # where live points, the pin, the recent versions
    make rollback ARGS="--previous"       # the version published before the one live runs
    make rollback ARGS="--to 41"          # a given version
    make rollback ARGS="--release"        # the next deploy moves live to the version it builds

A rollback done with ``aws lambda update-alias`` alone is drift: the next ``cdktf deploy`` moves
``live`` back to the version it builds, and the bad release is live again. Here the version is
also written as a pin (SSM ``/payments/<suffix>/rollback/api``), which the stack reads at plan
time (lib/functions.py): a deploy keeps ``live`` on the pinned version until ``--release``.
The pin is written before the alias moves, so a failure in between leaves the pin set: run the
command again. Acts on the environment the deploy variables describe (the local cloud when it
runs and no AWS target is set); exits 1 with one line when the version does not exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda"), str(ROOT / "scripts")]

from botocore.exceptions import ClientError  # noqa: E402
from deployment import operator_target  # noqa: E402

from lib.functions import API, LIVE_ALIAS, rollback_path  # noqa: E402


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--to", metavar="VERSION", help="the published version to point live at")
    action.add_argument("--previous", action="store_true", help="the version before live's")
    action.add_argument("--release", action="store_true", help="remove the pin")
    return parser.parse_args(argv)


def _versions(awslambda: Any, function: str) -> list[int]:
    versions: list[int] = []
    for page in awslambda.get_paginator("list_versions_by_function").paginate(
        FunctionName=function
    ):
        versions += [int(v["Version"]) for v in page["Versions"] if v["Version"] != "$LATEST"]
    return sorted(versions)


def _pin(ssm: Any, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    target = operator_target("rollback")
    if target is None:
        return 1
    settings, client, where = target.settings, target.client, target.where
    awslambda, ssm = client("lambda"), client("ssm")
    function, pin_name = settings.name(API), f"{rollback_path(settings)}/{API}"
    live = awslambda.get_alias(FunctionName=function, Name=LIVE_ALIAS)["FunctionVersion"]
    versions = _versions(awslambda, function)
    if args.release:
        ssm.delete_parameters(Names=[pin_name])
        print(
            f"{function}: pin removed; live stays on version {live} until the next deploy "
            "moves it to the version it builds"
        )
        return 0
    if not args.to and not args.previous:
        pin = _pin(ssm, pin_name)
        print(f"{function} on {where}: live -> version {live}; pinned: {pin or 'no'}")
        print(f"published versions: {', '.join(map(str, versions[-10:])) or 'none'}")
        return 0
    if args.previous:
        earlier = [v for v in versions if v < int(live)]
        if not earlier:
            print(f"rollback: {function} has no version before {live}")
            return 1
        target = str(earlier[-1])
    else:
        target = str(args.to)
        if not target.isdigit() or int(target) not in versions:
            print(f"rollback: {function} has no published version {target!r} (see make rollback)")
            return 1
    ssm.put_parameter(
        Name=pin_name,
        Value=target,
        Type="String",
        Overwrite=True,
        Description=f"make rollback: the version {function}'s live alias stays on across deploys",
    )
    awslambda.update_alias(FunctionName=function, Name=LIVE_ALIAS, FunctionVersion=target)
    print(
        f"{function}: live -> version {target} (was {live}), pinned: deploys keep it there until "
        "make rollback ARGS=--release"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
