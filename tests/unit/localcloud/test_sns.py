"""SNS on the patched moto (``localcloud/services/sns.py``): a topic keeps a bounded history."""

from __future__ import annotations

import pytest
from localcloud_support import ACCOUNT_ID

from localcloud.services.sns import SENT_NOTIFICATIONS_KEPT

pytestmark = pytest.mark.xdist_group("localcloud-sns")


class TestSentNotifications:
    def test_a_topic_keeps_only_its_latest_sent_notifications(self, cloud):
        """Stock moto keeps every message ever published on the topic object."""
        from moto.sns.models import sns_backends

        sns = cloud.client("sns")
        arn = sns.create_topic(Name="bounded")["TopicArn"]
        url, queue_arn = cloud.create_queue("bounded-subscriber")
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        total = SENT_NOTIFICATIONS_KEPT + 20
        for start in range(0, total, 10):
            sns.publish_batch(
                TopicArn=arn,
                PublishBatchRequestEntries=[
                    {"Id": str(n), "Message": f"event {start + n}"} for n in range(10)
                ],
            )
        topic = sns_backends[ACCOUNT_ID]["us-east-1"].topics[arn]
        assert len(topic.sent_notifications) == SENT_NOTIFICATIONS_KEPT
        assert topic.sent_notifications[-1][1] == f"event {total - 1}"
        depth = cloud.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        assert depth == str(total)  # every message still reached the subscriber
