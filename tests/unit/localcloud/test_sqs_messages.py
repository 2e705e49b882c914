"""SQS messages on the patched moto (``localcloud/services/sqs/messages.py``): receives, deletes and
counts that cost the messages they touch, SQS's visibility rules kept, deleted handles as
digests."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from localcloud_support import ACCOUNT_ID, wait_for

from localcloud.services.sqs.messages import HandleDigests

pytestmark = pytest.mark.xdist_group("localcloud-sqs-messages")


class TestIndexedMessages:
    def test_receive_and_delete_touch_the_messages_they_handle_not_the_queue(
        self, cloud, monkeypatch
    ):
        """Stock moto checks every message's visibility on each receive and scans every
        message's receipt handles on each delete: a queue of N pending messages made each
        message cost N."""
        from moto.sqs.models import Message

        looked_at: list[str] = []
        had_handle = Message.had_receipt_handle
        visible = Message.visible

        def counting_had_handle(self, handle):
            looked_at.append(self.id)
            return had_handle(self, handle)

        def counting_visible(self):
            looked_at.append(self.id)
            return visible.fget(self)

        url, _ = cloud.create_queue("deep")
        sqs = cloud.client("sqs")
        for start in range(0, 2000, 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "MessageBody": f"m-{start + n}"} for n in range(10)],
            )
        monkeypatch.setattr(Message, "had_receipt_handle", counting_had_handle)
        monkeypatch.setattr(Message, "visible", property(counting_visible))
        bodies = []
        for _ in range(3):
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
            for message in got["Messages"]:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        assert bodies == [f"m-{n}" for n in range(30)]  # send order, each once
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, VisibilityTimeout=60)
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (read["ApproximateNumberOfMessages"], read["ApproximateNumberOfMessagesNotVisible"],
                read["ApproximateNumberOfMessagesDelayed"]) == ("1965", "5", "0")  # fmt: skip
        assert len(looked_at) <= 80  # 35 messages handled and 5 counted, out of 2,000 queued

    def test_visibility_rules_hold_with_the_index(self, cloud):
        url, _ = cloud.create_queue("visibility")
        sqs = cloud.client("sqs")
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=f"v-{n}")

        def receive(count=10, visibility=60):
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=count, VisibilityTimeout=visibility
            )
            return got.get("Messages", [])

        first = receive(count=2)
        assert [m["Body"] for m in first] == ["v-0", "v-1"]
        assert [m["Body"] for m in receive()] == ["v-2"]  # in flight ones are not handed out
        assert receive() == []
        # Back to visible: received again, with a new receipt handle and a higher count.
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=0
        )
        again = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        )["Messages"]
        assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [
            ("v-0", "2")
        ]
        # No visibility timeout: visible at once, but one receive hands a message out once.
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0
        )
        still_visible = receive(visibility=0)
        assert [m["Body"] for m in still_visible] == ["v-0"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=still_visible[0]["ReceiptHandle"])
        # A visibility timeout that runs out brings the message back by itself.
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=first[1]["ReceiptHandle"], VisibilityTimeout=1
        )
        assert wait_for(lambda: [m["Body"] for m in receive()], timeout=5) == ["v-1"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first[1]["ReceiptHandle"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])  # again: fine
        with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
            sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # v-2 in flight
        sqs.purge_queue(QueueUrl=url)
        sqs.send_message(QueueUrl=url, MessageBody="after purge")
        assert [m["Body"] for m in receive()] == ["after purge"]

    def test_a_long_poll_returns_when_a_message_arrives(self, cloud):
        import threading
        import time

        url, _ = cloud.create_queue("long-poll")
        sqs = cloud.client("sqs")
        threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=url, MessageBody="late")).start()
        started = time.monotonic()
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
        assert [m["Body"] for m in got] == ["late"]
        assert time.monotonic() - started < 4


class TestDeletedHandles:
    def test_deleted_receipt_handles_are_kept_as_digests(self, cloud):
        """Stock moto keeps the text of every receipt handle of every deleted message."""
        from moto.sqs.models import sqs_backends

        url, _ = cloud.create_queue("digests")
        sqs = cloud.client("sqs")
        sqs.send_message(QueueUrl=url, MessageBody="m")
        handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)  # twice is fine, as in SQS
        queue = sqs_backends[ACCOUNT_ID]["us-east-1"].get_queue("digests")
        assert isinstance(queue.deleted_messages, HandleDigests)
        assert handle in queue.deleted_messages and len(queue.deleted_messages) == 1
        assert "not-a-handle" not in queue.deleted_messages
        with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
            sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
