"""SQS queue attributes on the patched moto (``localcloud/services/sqs/attributes.py``): the redrive
policies as sent, and sends and receives that count nothing and build only what they read.

Each test fails on moto as it ships: it re-serialises RedrivePolicy, never returns
RedriveAllowPolicy (and refuses it by name), and builds every attribute on each send and receive."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.xdist_group("localcloud-sqs-attributes")


COMPACT = {"separators": (",", ":")}


class TestRedrivePolicy:
    def test_redrive_policy_reads_back_exactly_as_sent(self, cloud):
        _, dlq_arn = cloud.create_queue("orders-dlq")
        # Terraform's spelling: no spaces and a string count; moto would re-serialise both.
        sent = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}, separators=",:")
        url, _ = cloud.create_queue("orders", RedrivePolicy=sent)
        sqs = cloud.client("sqs")
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        assert read["Attributes"]["RedrivePolicy"] == sent

        changed = json.dumps({"maxReceiveCount": 5, "deadLetterTargetArn": dlq_arn})
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": changed})
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        assert read["Attributes"]["RedrivePolicy"] == changed


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


class TestSendsAndReceives:
    def test_sending_and_receiving_do_not_count_the_queue(self, cloud, monkeypatch):
        from moto.sqs.models import Queue

        counted = []
        count = Queue.approximate_number_of_messages

        def counting(self):
            counted.append(self.name)
            return count.fget(self)

        monkeypatch.setattr(Queue, "approximate_number_of_messages", property(counting))
        url, _ = cloud.create_queue("uncounted")
        counted.clear()  # creating it read its ARN from the attributes
        sqs = cloud.client("sqs")
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"m-{n}")
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"b-{n}"} for n in range(5)]
        )
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=60)
        assert len(received["Messages"]) == 4
        assert counted == []
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        visible, in_flight = (
            read["ApproximateNumberOfMessages"],
            read["ApproximateNumberOfMessagesNotVisible"],
        )
        assert (visible, in_flight) == ("6", "4")
        assert set(counted) == {"uncounted"}  # GetQueueAttributes still counts

    def test_sending_and_receiving_build_no_attribute_they_do_not_read(self, cloud, monkeypatch):
        """Stock moto builds every attribute (the queue policy as JSON among them) per send."""
        from moto.sqs.models import Queue

        built = []
        policy = Queue.policy

        def counting(self):
            built.append(self.name)
            return policy.fget(self)

        monkeypatch.setattr(Queue, "policy", property(counting, policy.fset))
        url, _ = cloud.create_queue("lazy")
        built.clear()
        sqs = cloud.client("sqs")
        sqs.send_message(QueueUrl=url, MessageBody="m")
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "b"}])
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]) == 2
        assert built == []
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        assert set(built) == {"lazy"}  # GetQueueAttributes still builds it
