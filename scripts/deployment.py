"""Which deployment an operator script talks to: the local cloud when its ``outputs.json`` is
there (in ``.local/`` by default) and no table names are exported, else AWS as configured."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from payments import env


def local_outputs() -> dict[str, Any] | None:
    """The local cloud's stack outputs, with this process's AWS environment pointed at it; None
    when the target is AWS."""
    from localcloud.config import LOCAL_CREDENTIALS, LocalCloudConfig

    outputs_file = LocalCloudConfig.from_env().outputs_file
    if os.environ.get(env.PAYMENTS_TABLE) or os.environ.get(env.AUDIT_LOG_TABLE):
        return None
    if not outputs_file.is_file():
        return None
    outputs = json.loads(outputs_file.read_text())
    os.environ["AWS_ENDPOINT_URL"] = outputs["endpoint_url"]
    os.environ["AWS_DEFAULT_REGION"] = outputs["region"]
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ[name.upper()] = value
    return {**outputs["stack_outputs"], "endpoint_url": outputs["endpoint_url"]}


def deploy_target() -> tuple[dict[str, str], str]:
    """The deploy variables an operator command acts on and where they point: the local cloud's
    environment when its server runs and no AWS target is set (``AWS_ENDPOINT_URL``,
    ``AWS_PROFILE``), else this process's environment against AWS."""
    if not os.environ.get("AWS_ENDPOINT_URL") and not os.environ.get("AWS_PROFILE"):
        from localcloud.config import LocalCloudConfig
        from localcloud.deploy import deploy_environment, running_server

        config = LocalCloudConfig.from_env()
        if running_server(config) is not None:
            return dict(deploy_environment(config)), f"the local cloud at {config.endpoint_url}"
    return dict(os.environ), "AWS"


def session_clients(variables: dict[str, str], where: str, region: str) -> Any:
    """``client(service, region=None)`` for the target: the local cloud's endpoint and
    credentials there, the caller's own on AWS."""
    import boto3

    session = boto3.session.Session(region_name=region)
    endpoint = variables.get("AWS_ENDPOINT_URL") or None
    credentials = {
        k.lower(): variables[k]
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if where != "AWS" and k in variables
    }

    def client(service: str, region_name: str | None = None) -> Any:
        return session.client(
            service, region_name=region_name or region, endpoint_url=endpoint, **credentials
        )

    return client


@dataclass(frozen=True)
class Target:
    """What an operator command acts on: the environment's settings, a client factory for
    where it runs, and a description of that place."""

    settings: Any
    client: Any
    where: str


def operator_target(prefix: str) -> Target | None:
    """The deploy target with its settings checked; None, after one line starting with
    ``prefix`` that names the bad setting, when they are not valid."""
    from lib.settings import ConfigError, Settings

    variables, where = deploy_target()
    try:
        settings = Settings.from_env(variables)
    except ConfigError as error:
        print(f"{prefix}: {error}")
        return None
    return Target(settings, session_clients(variables, where, settings.region), where)
