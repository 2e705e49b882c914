"""Session fixtures: each profile is synthesized once per session (the provider load and the
jsii round trips are the expensive part), then every test reads the same JSON."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktf import Testing

from lib.runtime import LAYER_ZIP
from lib.settings import PROFILES, Settings
from lib.stack import STACK_NAME, PaymentsStack

SUFFIXES = {"dev": "ci-dev", "staging": "ci-stg", "production": "ci-prod"}
# Staging and production need the role that administers their key (never the deployer).
KEY_ADMIN_ROLE_ARN = "arn:aws:iam::123456789012:role/payments-key-admins"
# Production must page someone: an on-call address and an incident tool's queue.
ALARM_SUBSCRIPTIONS = "email:oncall@example.com,sqs:arn:aws:sqs:us-east-1:123456789012:incidents"
# Production is synthesized with an S3 state bucket, dev and staging with local state.
STATE_ENV = {
    "TERRAFORM_STATE_BUCKET": "ci-state-bucket",
    "TERRAFORM_STATE_BUCKET_REGION": "eu-west-1",
}


@dataclass(frozen=True)
class Synth:
    settings: Settings
    json: str
    doc: dict[str, Any]
    stack: PaymentsStack

    @property
    def profile(self):
        return self.settings.profile

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return self.doc.get("resource", {}).get(resource_type, {})

    def one(self, resource_type: str, id_part: str = "") -> dict[str, Any]:
        matches = [v for k, v in self.resources(resource_type).items() if id_part in k]
        assert len(matches) == 1, f"{resource_type} matching {id_part!r}: {len(matches)}"
        return matches[0]

    def data(self, data_type: str) -> dict[str, dict[str, Any]]:
        return self.doc.get("data", {}).get(data_type, {})

    def has(self, resource_type: str, properties: dict[str, Any]) -> bool:
        return Testing.to_have_resource_with_properties(self.json, resource_type, properties)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build dir with a placeholder layer: synth must not need `make layer` or the network."""
    root = tmp_path_factory.mktemp("build")
    layer = root / LAYER_ZIP
    layer.parent.mkdir(parents=True)
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("python/", (1980, 1, 1, 0, 0, 0)), "")
    return root


def synthesize(profile: str, build_dir: Path) -> Synth:
    env = {"ENVIRONMENT": profile, "ENVIRONMENT_SUFFIX": SUFFIXES[profile]}
    if profile != "dev":
        env["KMS_ADMIN_ROLE_ARN"] = KEY_ADMIN_ROLE_ARN
    if profile == "production":
        env |= STATE_ENV | {"ALARM_SUBSCRIPTIONS": ALARM_SUBSCRIPTIONS}
    settings = Settings.from_env(env)
    stack = PaymentsStack(Testing.app(), STACK_NAME, settings=settings, build_dir=build_dir)
    synthesized = Testing.synth(stack)
    return Synth(settings, synthesized, json.loads(synthesized), stack)


@pytest.fixture(scope="session")
def dev(build_dir: Path) -> Synth:
    return synthesize("dev", build_dir)


@pytest.fixture(scope="session")
def staging(build_dir: Path) -> Synth:
    return synthesize("staging", build_dir)


@pytest.fixture(scope="session")
def production(build_dir: Path) -> Synth:
    return synthesize("production", build_dir)


@pytest.fixture(scope="session", params=list(PROFILES))
def each(request: pytest.FixtureRequest) -> Iterator[Synth]:
    """Every profile in turn (each synthesized once per session)."""
    yield request.getfixturevalue(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the infra tests on one xdist worker (with ``--dist loadgroup``): every worker that
    runs any of them pays for the session synths, so spreading them doubles the cost."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("infra"))
