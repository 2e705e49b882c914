"""The OpenAPI document: committed as rendered from the contract, valid, and the deployed API's.

The document (``docs/openapi.yaml``) is rendered by ``lib/openapi.py`` from
``lambda/payments/contract.py``, the source the stack and the handler read too.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from cdktf_cdktf_provider_aws.api_gateway_method import ApiGatewayMethod

from lib import openapi
from lib.api_spec import GATEWAY_ERRORS, ROUTES, contract
from lib.runtime import ROOT
from tests.infra.test_api import _methods

DOCUMENT = yaml.safe_load(openapi.DOCUMENT_PATH.read_text())
OPERATIONS = {
    (method.upper(), path): operation
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
}


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = DOCUMENT["components"][section][name]
    return node


def test_the_committed_document_is_the_rendering_of_the_contract():
    assert openapi.DOCUMENT_PATH.read_text() == openapi.render(), (
        "docs/openapi.yaml is out of date: run `python -m lib.openapi` (or `make docs`)"
    )


def test_it_is_openapi_3_1_with_every_contract_route_once():
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["version"] == contract.API_VERSION
    assert set(OPERATIONS) == {(r.method, r.path) for r in ROUTES}
    assert [op["operationId"] for op in OPERATIONS.values()] == [r.operation_id for r in ROUTES]


def test_the_synthesized_api_serves_exactly_the_documented_operations_and_keys(dev):
    methods = {k: v for k, v in _methods(dev).items() if k[0] not in ("OPTIONS", "ANY")}
    assert set(methods) == set(OPERATIONS)
    for key, operation in OPERATIONS.items():
        needs_key = operation.get("security", DOCUMENT["security"]) != []
        assert methods[key]["api_key_required"] is needs_key, key
    assert dev.resources(ApiGatewayMethod.TF_RESOURCE_TYPE)


@pytest.mark.parametrize("key", sorted(OPERATIONS), ids="{0[0]} {0[1]}".format)
def test_every_response_is_json_with_a_schema(key):
    for status, response in OPERATIONS[key]["responses"].items():
        content = _resolve(response)["content"]
        assert list(content) == ["application/json"], (key, status)
        assert "$ref" in content["application/json"]["schema"]


@pytest.mark.parametrize("key", sorted(OPERATIONS), ids="{0[0]} {0[1]}".format)
def test_gateway_answers_are_documented_on_every_operation(key):
    statuses = set(OPERATIONS[key]["responses"])
    assert {"429", "500", "502", "503", "504"} <= statuses
    keyed = OPERATIONS[key].get("security", DOCUMENT["security"]) != []
    assert ("403" in statuses) is keyed
    if key[0] == "POST":
        assert {"400", "413"} <= statuses


def test_error_codes_of_gateway_responses_are_in_the_error_schema():
    codes = DOCUMENT["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
    assert {error.code for error in GATEWAY_ERRORS.values()} <= set(codes)


def test_the_signed_webhook_needs_the_key_and_the_signature():
    (requirement,) = OPERATIONS[("POST", "/fraud-webhook")]["security"]
    assert set(requirement) == {openapi.API_KEY_SCHEME, openapi.SIGNATURE_SCHEME}
    scheme = DOCUMENT["components"]["securitySchemes"][openapi.SIGNATURE_SCHEME]
    assert scheme["name"] == contract.SIGNATURE_HEADER


def test_a_created_payment_links_to_reading_it():
    links = OPERATIONS[("POST", "/payments")]["responses"]["202"]["links"]
    assert links["GetPayment"] == {
        "operationId": "getPayment",
        "parameters": {"payment_id": "$response.body#/payment_id"},
        "description": "The payment just submitted",
    }


@pytest.mark.skipif(not shutil.which("npx"), reason="Node.js is not installed")
def test_redocly_lints_it_clean_and_renders_the_reference_page(tmp_path):
    """What `make docs` runs: the pinned Redocly CLI from package-lock.json."""
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
    npx = ["npx", "--no-install", "redocly"]
    lint = subprocess.run(
        [*npx, "lint", "--format=stylish", str(openapi.DOCUMENT_PATH)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "warning" not in lint.stdout.lower(), lint.stdout
    page = tmp_path / "api.html"
    build = subprocess.run(
        [*npx, "build-docs", str(openapi.DOCUMENT_PATH), "--inlineBundle", "-o", str(page)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    html = page.read_text()
    assert "Payments API" in html and "createPayment" in html
