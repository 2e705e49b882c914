"""Lambda provisioned concurrency on the patched moto
(``localcloud/services/lambda_/concurrency.py``), which as it ships has no route for it (404)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.xdist_group("localcloud-lambda-concurrency")


@pytest.fixture(scope="module")
def live_alias(cloud):
    """A function with reserved concurrency 10, one published version and a ``live`` alias."""
    name = "provisioned"
    cloud.create_function(name, "def handler(event, context):\n    return 1\n")
    awslambda = cloud.client("lambda")
    awslambda.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=10)
    version = awslambda.publish_version(FunctionName=name)["Version"]
    awslambda.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    return name, version


class TestLambdaProvisionedConcurrency:
    def test_put_get_list_delete_round_trip_on_the_alias(self, cloud, live_alias):
        name, _ = live_alias
        awslambda = cloud.client("lambda")
        put = awslambda.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=4
        )
        assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert (put["RequestedProvisionedConcurrentExecutions"], put["Status"]) == (4, "READY")
        got = awslambda.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
        assert got["RequestedProvisionedConcurrentExecutions"] == 4
        assert got["AllocatedProvisionedConcurrentExecutions"] == 4
        assert got["Status"] == "READY"
        listed = awslambda.list_provisioned_concurrency_configs(FunctionName=name)
        (config,) = listed["ProvisionedConcurrencyConfigs"]
        assert config["FunctionArn"].endswith(f":function:{name}:live")

        awslambda.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
        with pytest.raises(ClientError) as error:
            awslambda.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
        assert error.value.response["Error"]["Code"] == (
            "ProvisionedConcurrencyConfigNotFoundException"
        )
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    def test_latest_and_unknown_qualifiers_are_refused(self, cloud, live_alias):
        name, _ = live_alias
        awslambda = cloud.client("lambda")
        with pytest.raises(ClientError) as error:
            awslambda.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
            )
        assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"
        with pytest.raises(ClientError) as error:
            awslambda.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="canary", ProvisionedConcurrentExecutions=1
            )
        assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
        with pytest.raises(ClientError) as error:
            awslambda.get_provisioned_concurrency_config(FunctionName="missing", Qualifier="live")
        assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"

    def test_configs_together_stay_within_the_reserved_concurrency(self, cloud, live_alias):
        name, version = live_alias
        awslambda = cloud.client("lambda")
        awslambda.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=6
        )
        try:
            with pytest.raises(ClientError) as error:
                awslambda.put_provisioned_concurrency_config(
                    FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=5
                )
            assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"
            # Replacing the alias's own config counts it once, not twice.
            replaced = awslambda.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=10
            )
            assert replaced["RequestedProvisionedConcurrentExecutions"] == 10
        finally:
            awslambda.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
