"""moto's server and model base, patched (``localcloud/services/core.py``), exercised through boto3
and raw HTTP.

Each test fails on moto as it ships: it closes every connection after one response, finds a
request's backend by trying every service, keeps every model object it makes, and carries out a
retried request twice."""

from __future__ import annotations

import json
import logging
import socket
import statistics
import struct
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from localcloud_support import RECORDING_HANDLER, handler_zip, recorded, wait_for

pytestmark = pytest.mark.xdist_group("localcloud-core")


class TestServer:
    def test_a_services_requests_find_their_backend_once(self, cloud, monkeypatch):
        """Stock moto matches every request's host against every service's URL patterns and
        then parses its credential scope, under one server-wide lock."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        inferred = []
        infer = DomainDispatcherApplication.infer_service_region_host

        def counting(self, environ, path):
            inferred.append(environ.get("HTTP_X_AMZ_TARGET") or path)
            return infer(self, environ, path)

        monkeypatch.setattr(DomainDispatcherApplication, "infer_service_region_host", counting)
        url, _ = cloud.create_queue("routed")
        sqs, dynamodb = cloud.client("sqs"), cloud.client("dynamodb")
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"r-{n}")
            dynamodb.list_tables()
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 5
        assert len(inferred) <= 2  # at most once per service (earlier tests may have routed)
        # A service outside the routed ones still takes moto's way, and still works.
        before = len(inferred)
        assert "Buckets" in cloud.client("s3").list_buckets()
        assert len(inferred) == before + 1

    def test_connections_stay_open_for_the_next_request(self, cloud):
        """Stock moto (werkzeug's development server) closes the connection after every
        response: each SDK call paid a connect, a server thread and a 10 ms drain."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", cloud.port, timeout=10)
        answers = []
        # Unsigned requests go to S3: two buckets made, then listed, on one connection.
        for method, path in (("PUT", "/kept-alive-1"), ("PUT", "/kept-alive-2"), ("GET", "/")):
            connection.request(method, path, body=b"" if method == "PUT" else None)
            socket_used = connection.sock
            response = connection.getresponse()
            answers.append((response.status, response.read()))
            assert not response.will_close
            assert connection.sock is socket_used
        assert [status for status, _ in answers] == [200, 200, 200]
        assert b"kept-alive-1" in answers[2][1]
        assert b"kept-alive-2" in answers[2][1]
        # Head and body go out together: a body written after its head on a kept connection
        # waits for the client's delayed ACK (Nagle), some 40 ms per request.
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            connection.request("GET", "/kept-alive-1")
            connection.getresponse().read()
            timings.append(time.perf_counter() - started)
        assert statistics.median(timings) < 0.025
        # A request that asks for it still gets its connection closed.
        connection.request("GET", "/moto-api/", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        assert response.will_close
        connection.close()


class TestModelTracking:
    def test_items_and_messages_are_not_kept_after_they_are_gone(self, cloud):
        """Stock moto appends every model instance it makes to ``instances_tracked``."""
        from moto.dynamodb.models.dynamo_type import Item
        from moto.sqs.models import Message

        before = (len(Item.instances_tracked), len(Message.instances_tracked))
        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="untracked",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        for n in range(20):
            update = {
                "TableName": "untracked",
                "Key": {"pk": {"S": f"k{n % 5}"}},
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": str(n)}},
            }
            dynamodb.transact_write_items(TransactItems=[{"Update": update}])
        url, _ = cloud.create_queue("untracked")
        sqs = cloud.client("sqs")
        for n in range(20):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        assert (len(Item.instances_tracked), len(Message.instances_tracked)) == before
        assert dynamodb.scan(TableName="untracked")["Count"] == 5


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
        with caplog.at_level(logging.WARNING, logger="localcloud.server"):
            client = socket.create_connection(("127.0.0.1", cloud.port))
            client.sendall(request.encode())
            time.sleep(0.3)  # the function is running
            # Close with a reset, as a client that gave up does: the answer has nowhere to go.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            wait_for(lambda: "slow-answer/invocations" in caplog.text, timeout=10)
        assert "connection dropped before the answer was sent" in caplog.text
        assert "/2015-03-31/functions/slow-answer/invocations" in caplog.text
