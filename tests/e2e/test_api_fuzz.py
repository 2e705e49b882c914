"""The published contract against the deployed API: its shape, then Schemathesis fuzzing it.

Schemathesis (pinned in Pipfile.lock) reads ``docs/openapi.yaml`` and sends generated requests
through the local cloud's gateway on 127.0.0.1 only: the documented examples, the boundary cases
of every schema (coverage), random valid and invalid requests (fuzzing) and chains along the
document's links (a created payment is then read and reported as fraud). Every response must be
no server error, have a documented status, content type and schema, refuse what the schema
refuses (negative data), enforce the declared auth, and answer an undocumented method with 405.

``positive_data_acceptance`` is left out: the document cannot state every rule (the minor units
of each currency, at most 999,999,999,999 in a decimal string), so a body valid by the schema can
rightly be a 400.
"""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from localcloud.client import LocalCloud
from localcloud.config import REPO_ROOT

DOCUMENT = REPO_ROOT / "docs" / "openapi.yaml"
# Per operation and phase; with the coverage phase's boundary cases and the stateful chains the
# whole run is a few thousand requests (about two minutes here).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "60"))
SEED = os.environ.get("FUZZ_SEED", "20261127")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
    ]
)


def test_the_deployed_api_serves_exactly_the_documented_operations(cloud: LocalCloud) -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    documented = {
        (method.upper(), path): operation.get("security", document["security"]) != []
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    resources = cloud.client("apigateway").get_resources(
        restApiId=cloud.stack["api_id"], limit=500, embed=["methods"]
    )["items"]
    deployed = {
        (method, resource["path"]): config.get("apiKeyRequired", False)
        for resource in resources
        for method, config in (resource.get("resourceMethods") or {}).items()
        if method not in ("OPTIONS", "ANY")
    }
    assert deployed == documented


def test_schemathesis_finds_nothing(cloud: LocalCloud, tmp_path) -> None:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "FUZZ_API_KEY": cloud.api_key,
        "FUZZ_WEBHOOK_SECRET": cloud.webhook_secret().split(b",")[0].decode(),
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(REPO_ROOT / "tests" / "e2e" / "schemathesis.toml"),
        "run",
        str(DOCUMENT),
        "--url",
        cloud.api_url,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    run = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    print(run.stdout[-20_000:])
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
