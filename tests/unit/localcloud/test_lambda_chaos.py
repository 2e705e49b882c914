"""Chaos mode of a Lambda worker: which faults it injects, and that a timeout comes after the
write took effect (so retries are tested against writes that happened)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from localcloud.services.lambda_ import _chaos


def test_settings_are_fractions_and_unknown_names_are_refused():
    assert _chaos.parse("faults=0.05,kills=0.002,seed=7") == {
        "faults": 0.05,
        "kills": 0.002,
        "seed": 7.0,
    }
    assert _chaos.parse("") == {"faults": 0.0, "kills": 0.0}
    with pytest.raises(ValueError, match="unknown setting 'fault'"):
        _chaos.parse("fault=0.1")
    with pytest.raises(ValueError, match="faults must be a fraction"):
        _chaos.parse("faults=5")


@pytest.fixture
def chaotic_clients(monkeypatch):
    from botocore.client import BaseClient

    monkeypatch.setattr(BaseClient, "_make_api_call", BaseClient._make_api_call)
    with mock_aws():
        yield


def test_every_faulted_call_is_a_throttle_a_500_or_a_timeout_after_it_took_effect(
    chaotic_clients,
):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    )
    from botocore.client import BaseClient

    real = BaseClient._make_api_call  # reads for the checks go past the chaos

    def stored(i):
        return "Item" in real(dynamodb, "GetItem", {"TableName": "t", "Key": {"k": {"S": str(i)}}})

    _chaos.install("faults=1,seed=3")
    kinds = Counter()
    for i in range(60):
        try:
            dynamodb.put_item(TableName="t", Item={"k": {"S": str(i)}})
        except ClientError as exc:
            kinds[exc.response["Error"]["Code"]] += 1
            # A refused call never reached the table.
            assert not stored(i)
        except ReadTimeoutError:
            kinds["timeout"] += 1
            # The caller saw a failure, but the write happened.
            assert stored(i)
    assert set(kinds) == {"ThrottlingException", "InternalServerError", "timeout"}
    assert sum(kinds.values()) == 60


def test_a_kill_ends_the_process_like_a_lost_execution_environment():
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from localcloud.services.lambda_ import _chaos; _chaos.install('kills=1');"
        "import boto3;"
        "boto3.client('sts', region_name='us-east-1', endpoint_url='http://127.0.0.1:9',"
        " aws_access_key_id='x', aws_secret_access_key='x').get_caller_identity()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 137
