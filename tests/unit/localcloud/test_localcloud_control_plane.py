"""The control-plane bridges of localcloud/control_plane.py, exercised through boto3.

Each test fails on moto as it ships: RedriveAllowPolicy is never returned (and refused by name),
provisioned concurrency has no route (404), rules that reference a security group or a prefix
list come back without their description, and a retried request is carried out twice.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from localcloud_support import RECORDING_HANDLER, handler_zip, recorded, wait_for

pytestmark = pytest.mark.xdist_group("localcloud-control-plane")

COMPACT = {"separators": (",", ":")}


class TestSqsRedriveAllowPolicy:
    def test_policy_reads_back_exactly_as_sent_by_name_and_with_all(self, cloud):
        _, source_arn = cloud.create_queue("rap-source")
        sent = json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": [source_arn]}, **COMPACT
        )
        url, _ = cloud.create_queue("rap-dlq", RedriveAllowPolicy=sent)
        sqs = cloud.client("sqs")
        by_name = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])
        assert by_name["Attributes"] == {"RedriveAllowPolicy": sent}
        every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert every["RedriveAllowPolicy"] == sent

        deny = json.dumps({"redrivePermission": "denyAll"}, **COMPACT)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": deny})
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])
        assert read["Attributes"]["RedriveAllowPolicy"] == deny

    def test_a_queue_without_one_lists_none_and_removing_it_clears_it(self, cloud):
        url, _ = cloud.create_queue("rap-none")
        sqs = cloud.client("sqs")
        every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert "RedriveAllowPolicy" not in every
        allow = json.dumps({"redrivePermission": "allowAll"}, **COMPACT)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": allow})
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": ""})
        every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert "RedriveAllowPolicy" not in every

    @pytest.mark.parametrize(
        "policy",
        [
            "not json",
            json.dumps({"redrivePermission": "sometimes"}),
            json.dumps({"redrivePermission": "byQueue"}),
            json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": []}),
            json.dumps({"redrivePermission": "denyAll", "sourceQueueArns": ["arn:aws:sqs:x"]}),
        ],
    )
    def test_a_malformed_policy_is_refused(self, cloud, policy):
        with pytest.raises(ClientError) as error:
            cloud.create_queue("rap-bad", RedriveAllowPolicy=policy)
        assert error.value.response["Error"]["Code"] == "InvalidParameterValue"
        assert "RedriveAllowPolicy" in error.value.response["Error"]["Message"]


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


class TestSecurityGroupRuleDescriptions:
    def test_rules_keep_their_description_whatever_they_reference(self, cloud):
        ec2 = cloud.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        functions = ec2.create_security_group(
            GroupName="functions", Description="functions", VpcId=vpc
        )["GroupId"]
        endpoints = ec2.create_security_group(
            GroupName="endpoints", Description="endpoints", VpcId=vpc
        )["GroupId"]
        prefix_list = ec2.create_managed_prefix_list(
            PrefixListName="s3", MaxEntries=2, AddressFamily="IPv4"
        )["PrefixList"]["PrefixListId"]
        https = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}
        ingress = ec2.authorize_security_group_ingress(
            GroupId=endpoints,
            IpPermissions=[
                {**https, "UserIdGroupPairs": [{"GroupId": functions, "Description": "in"}]}
            ],
        )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        to_group, to_list, to_cidr = (
            ec2.authorize_security_group_egress(GroupId=functions, IpPermissions=[permission])[
                "SecurityGroupRules"
            ][0]["SecurityGroupRuleId"]
            for permission in (
                {**https, "UserIdGroupPairs": [{"GroupId": endpoints, "Description": "group"}]},
                {**https, "PrefixListIds": [{"PrefixListId": prefix_list, "Description": "list"}]},
                {**https, "IpRanges": [{"CidrIp": "10.9.0.0/24", "Description": "cidr"}]},
            )
        )

        def descriptions() -> dict[str, str | None]:
            rules = ec2.describe_security_group_rules(
                SecurityGroupRuleIds=[ingress, to_group, to_list, to_cidr]
            )["SecurityGroupRules"]
            return {rule["SecurityGroupRuleId"]: rule.get("Description") for rule in rules}

        assert descriptions() == {
            ingress: "in",
            to_group: "group",
            to_list: "list",
            to_cidr: "cidr",
        }

        ec2.modify_security_group_rules(
            GroupId=functions,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": to_group,
                    "SecurityGroupRule": {
                        **https,
                        "ReferencedGroupId": endpoints,
                        "Description": "changed",
                    },
                }
            ],
        )
        assert descriptions()[to_group] == "changed"


def _as_attempts_of_one_call(client, invocation_id: str):
    """Make every request of ``client`` look like one more attempt of the same SDK call."""

    def same_invocation(request, **_):
        request.headers["amz-sdk-invocation-id"] = invocation_id
        request.headers["amz-sdk-request"] = "attempt=2; max=3"

    client.meta.events.register("before-send", same_invocation)
    return client


class TestRetriedRequests:
    def test_a_retried_create_function_gets_the_first_answer_not_a_conflict(self, cloud):
        awslambda = _as_attempts_of_one_call(cloud.client("lambda"), str(uuid.uuid4()))
        source = "def handler(event, context):\n    return 1\n"
        first = awslambda.create_function(
            FunctionName="retried-create",
            Runtime="python3.12",
            Role=cloud.client("iam").create_role(
                RoleName="retried-create", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"],
            Handler="app.handler",
            Code={"ZipFile": handler_zip(source)},
        )
        again = awslambda.create_function(
            FunctionName="retried-create",
            Runtime="python3.12",
            Role=first["Role"],
            Handler="app.handler",
            Code={"ZipFile": handler_zip(source)},
        )
        assert again["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert (again["FunctionArn"], again["LastModified"]) == (
            first["FunctionArn"],
            first["LastModified"],
        )
        # A new call (another invocation id) is not a retry: it conflicts, as in AWS.
        with pytest.raises(ClientError) as error:
            cloud.client("lambda").create_function(
                FunctionName="retried-create",
                Runtime="python3.12",
                Role=first["Role"],
                Handler="app.handler",
                Code={"ZipFile": handler_zip(source)},
            )
        assert error.value.response["Error"]["Code"] == "ResourceConflictException"

    def test_a_failed_first_attempt_is_not_replayed(self, cloud):
        sqs = _as_attempts_of_one_call(cloud.client("sqs"), str(uuid.uuid4()))
        url, _ = cloud.create_queue("retried-send")
        cloud.client("sqs").delete_queue(QueueUrl=url)
        with pytest.raises(ClientError):
            sqs.send_message(QueueUrl=url, MessageBody="lost")
        url, _ = cloud.create_queue("retried-send")
        sqs.send_message(QueueUrl=url, MessageBody="sent")
        read = cloud.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert read["Attributes"]["ApproximateNumberOfMessages"] == "1"

    def test_a_retry_during_its_first_attempt_waits_for_that_answer(self, cloud, tmp_path):
        record_file = tmp_path / "invocations.jsonl"
        cloud.create_function(
            "retried-invoke",
            "import time\n" + RECORDING_HANDLER + "\ndef handler(event, context):\n"
            "    record(event)\n    time.sleep(1)\n    return {'n': event['n']}\n",
            Environment={"Variables": {"RECORD_FILE": str(record_file)}},
        )
        invocation = str(uuid.uuid4())
        answers = []

        def invoke() -> None:
            client = _as_attempts_of_one_call(cloud.client("lambda"), invocation)
            answer = client.invoke(FunctionName="retried-invoke", Payload=b'{"n": 7}')
            answers.append(json.loads(answer["Payload"].read()))

        first = threading.Thread(target=invoke)
        first.start()
        wait_for(lambda: recorded(record_file))  # the first attempt is running
        invoke()
        first.join()
        assert answers == [{"n": 7}, {"n": 7}]
        assert recorded(record_file) == [{"n": 7}]

    def test_an_answer_the_client_never_took_is_named_in_the_log(self, cloud, caplog):
        cloud.create_function(
            "slow-answer", "import time\ndef handler(event, context):\n    time.sleep(1)\n"
        )
        request = (
            "POST /2015-03-31/functions/slow-answer/invocations HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{cloud.port}\r\n"
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/lambda/"
            "aws4_request, SignedHeaders=host, Signature=0\r\n"
            "amz-sdk-invocation-id: dropped-by-the-client\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        with caplog.at_level(logging.WARNING, logger="localcloud.control_plane"):
            client = socket.create_connection(("127.0.0.1", cloud.port))
            client.sendall(request.encode())
            time.sleep(0.3)  # the function is running
            # Close with a reset, as a client that gave up does: the answer has nowhere to go.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            wait_for(lambda: "slow-answer/invocations" in caplog.text, timeout=10)
        assert "connection dropped before the answer was sent" in caplog.text
        assert "/2015-03-31/functions/slow-answer/invocations" in caplog.text
