"""`cdktf destroy` tears the local stack down completely. Runs last (see conftest)."""

from __future__ import annotations

import subprocess

from localcloud.client import LocalCloud
from localcloud.config import REPO_ROOT
from localcloud.deploy import STACK, deploy_environment


def test_cdktf_destroy_leaves_nothing_behind(cloud: LocalCloud) -> None:
    env = deploy_environment(cloud.config)
    result = subprocess.run(
        ["npx", "--no-install", "cdktf", "destroy", STACK, "--auto-approve", "--no-color"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    # The deployment is gone: a later `up` on this server deploys again.
    cloud.config.outputs_file.unlink(missing_ok=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    state_bucket = env["TERRAFORM_STATE_BUCKET"]
    buckets = [b["Name"] for b in cloud.client("s3").list_buckets()["Buckets"]]
    assert buckets == [state_bucket]
    assert cloud.client("dynamodb").list_tables()["TableNames"] == []
    assert cloud.client("sqs").list_queues().get("QueueUrls", []) == []
    assert cloud.client("sns").list_topics()["Topics"] == []
    assert cloud.client("lambda").list_functions()["Functions"] == []
    assert cloud.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []
    assert cloud.client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert cloud.client("apigateway").get_rest_apis()["items"] == []
    assert cloud.client("apigateway").get_api_keys()["items"] == []
    assert cloud.client("ssm").describe_parameters()["Parameters"] == []
    # The account stack that `up` deployed first is not the environment's to destroy: API
    # Gateway's account setting still names its CloudWatch role (README, "Once per account").
    from lib.account import API_GATEWAY_LOGS_ROLE

    role = cloud.client("iam").get_role(RoleName=API_GATEWAY_LOGS_ROLE)["Role"]
    assert cloud.client("apigateway").get_account()["cloudwatchRoleArn"] == role["Arn"]
