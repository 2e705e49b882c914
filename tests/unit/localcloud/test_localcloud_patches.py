"""The patches that bridge moto's gaps, applied in-process and exercised through boto3.

Each test names the gap from docs/LOCALCLOUD.md it proves bridged. The pure bucket-policy
condition logic is in test_localcloud_policy_conditions.py.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid
from urllib.parse import quote, unquote

import pytest
from botocore.exceptions import ClientError
from localcloud_support import ACCOUNT_ID, RECORDING_HANDLER, record_calls, recorded, wait_for

from localcloud import patches

pytestmark = pytest.mark.xdist_group("localcloud-patches")

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def tls_only_policy(bucket: str, *extra: dict) -> str:
    """A TLS-only policy shaped like the stack's (Deny every principal over HTTP), plus extras."""
    deny_http = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [deny_http, *extra]})


class TestBucketPolicyConditions:
    def test_tls_only_deny_lets_local_requests_through(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="tls-only")
        s3.put_bucket_policy(Bucket="tls-only", Policy=tls_only_policy("tls-only"))
        s3.put_object(Bucket="tls-only", Key="incoming/batch.csv", Body=b"a,b\n")
        body = s3.get_object(Bucket="tls-only", Key="incoming/batch.csv")["Body"].read()
        assert body == b"a,b\n"

    def test_an_unconditional_deny_still_denies(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="locked-prefix")
        locked = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::locked-prefix/locked/*",
        }
        s3.put_bucket_policy(
            Bucket="locked-prefix", Policy=tls_only_policy("locked-prefix", locked)
        )
        s3.put_object(Bucket="locked-prefix", Key="open/a.txt", Body=b"x")
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket="locked-prefix", Key="locked/a.txt", Body=b"x")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    def test_a_deny_whose_condition_holds_locally_denies(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="old-tls")
        # Every local request is TLS 1.3 (patches.REQUEST_CONTEXT): a Deny below 2 applies.
        below_two = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::old-tls/*",
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "2"}},
        }
        s3.put_bucket_policy(Bucket="old-tls", Policy=tls_only_policy("old-tls", below_two))
        with pytest.raises(ClientError):
            s3.put_object(Bucket="old-tls", Key="a.txt", Body=b"x")

    def test_logging_target_with_a_star_principal_statement_is_accepted(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="access-logs")
        s3.create_bucket(Bucket="served")
        allow_logging = {
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::access-logs/served/*",
        }
        s3.put_bucket_policy(
            Bucket="access-logs", Policy=tls_only_policy("access-logs", allow_logging)
        )
        target = {"TargetBucket": "access-logs", "TargetPrefix": "served/"}
        s3.put_bucket_logging(Bucket="served", BucketLoggingStatus={"LoggingEnabled": target})
        assert s3.get_bucket_logging(Bucket="served")["LoggingEnabled"] == target


class TestS3Listings:
    def test_list_object_versions_honours_encoding_type_url(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="versioned")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        # The provider decodes what it asked to be encoded: a raw "%41" would come back as "A".
        key = "reports/100%41 done+.csv"
        s3.put_object(Bucket="versioned", Key=key, Body=b"x")
        # Named explicitly, botocore leaves the keys encoded, as the Go SDK receives them.
        listing = s3.list_object_versions(Bucket="versioned", EncodingType="url")
        assert listing["EncodingType"] == "url"
        assert [v["Key"] for v in listing["Versions"]] == [quote(key)]
        assert unquote(listing["Versions"][0]["Key"]) == key


class TestS3Notifications:
    def test_event_has_version_sequencer_and_slash_and_reaches_the_function(self, cloud, tmp_path):
        record_file = tmp_path / "events.jsonl"
        arn = cloud.create_function(
            "on-upload",
            RECORDING_HANDLER + "def handler(event, context):\n    record(event)\n",
            Environment={"Variables": {"RECORD_FILE": str(record_file)}},
        )
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="uploads")
        s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_notification_configuration(
            Bucket="uploads",
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [
                    {"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
                ]
            },
        )
        version = s3.put_object(Bucket="uploads", Key="incoming/a b.csv", Body=b"x")["VersionId"]
        (event,) = wait_for(lambda: recorded(record_file))
        obj = event["Records"][0]["s3"]["object"]
        assert obj["key"] == "incoming/a+b.csv"
        assert obj["versionId"] == version
        assert int(obj["sequencer"], 16) > 0


class TestLambda:
    def test_handler_error_is_reported_unhandled_with_its_type(self, cloud):
        cloud.create_function(
            "fails", "def handler(event, context):\n    raise ValueError('bad amount')\n"
        )
        response = cloud.client("lambda").invoke(FunctionName="fails", Payload=b"{}")
        assert response["FunctionError"] == "Unhandled"
        payload = json.loads(response["Payload"].read())
        assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "bad amount")

    def test_success_runs_the_uploaded_handler_and_tails_its_log(self, cloud):
        cloud.create_function(
            "doubles", "def handler(event, context):\n    print('doubling')\n    return event * 2\n"
        )
        response = cloud.client("lambda").invoke(
            FunctionName="doubles", Payload=b"21", LogType="Tail"
        )
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == 42
        assert "doubling" in base64.b64decode(response["LogResult"]).decode()

    def test_a_functions_log_keeps_the_latest_invocations(self, cloud, monkeypatch):
        """Stock moto keeps a log stream for every invocation forever: a soak's logs outgrew
        everything else in the server's memory."""
        monkeypatch.setattr(patches, "LOG_STREAMS_KEPT", 3)
        cloud.create_function(
            "chatty", "def handler(event, context):\n    print('call', event)\n    return event\n"
        )
        for n in range(5):
            cloud.client("lambda").invoke(FunctionName="chatty", Payload=str(n).encode())
        logs = cloud.client("logs")
        streams = logs.describe_log_streams(logGroupName="/aws/lambda/chatty")["logStreams"]
        assert len(streams) == 3
        messages = [
            event["message"]
            for stream in streams
            for event in logs.get_log_events(
                logGroupName="/aws/lambda/chatty", logStreamName=stream["logStreamName"]
            )["events"]
        ]
        assert sorted(m for m in messages if m.startswith("call")) == ["call 2", "call 3", "call 4"]

    def test_dead_letter_and_logging_config_read_back_as_sent(self, cloud):
        _, dlq_arn = cloud.create_queue("fn-dlq")
        cloud.create_function(
            "with-dlq",
            "def handler(e, c):\n    return 1\n",
            DeadLetterConfig={"TargetArn": dlq_arn},
        )
        lam = cloud.client("lambda")
        config = lam.get_function_configuration(FunctionName="with-dlq")
        assert config["DeadLetterConfig"] == {"TargetArn": dlq_arn}
        # Lambda's defaults when the function names no logging configuration.
        assert config["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/aws/lambda/with-dlq"}

        lam.update_function_configuration(
            FunctionName="with-dlq",
            DeadLetterConfig={},
            LoggingConfig={"LogFormat": "JSON", "LogGroup": "/payments/with-dlq"},
        )
        updated = lam.get_function_configuration(FunctionName="with-dlq")
        assert "DeadLetterConfig" not in updated
        assert updated["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": "/payments/with-dlq"}

    def test_async_failure_is_retried_twice_then_sent_to_the_dead_letter_queue(
        self, cloud, tmp_path, monkeypatch
    ):
        # What is under test is the number of attempts and the DLQ, not Lambda's minutes of delay.
        retries = len(patches.ASYNC_RETRY_DELAYS_SECONDS)
        monkeypatch.setattr(patches, "ASYNC_RETRY_DELAYS_SECONDS", (0.05,) * retries)
        record_file = tmp_path / "attempts.jsonl"
        dlq_url, dlq_arn = cloud.create_queue("async-dlq")
        cloud.create_function(
            "async-fails",
            RECORDING_HANDLER + "def handler(event, context):\n    record(event)\n    1 / 0\n",
            Environment={"Variables": {"RECORD_FILE": str(record_file)}},
            DeadLetterConfig={"TargetArn": dlq_arn},
        )
        response = cloud.client("lambda").invoke(
            FunctionName="async-fails", InvocationType="Event", Payload=b'{"n": 1}'
        )
        assert response["StatusCode"] == 202
        sqs = cloud.client("sqs")
        messages = wait_for(
            lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages")
        )
        assert [json.loads(m["Body"]) for m in messages] == [{"n": 1}]
        assert recorded(record_file) == [{"n": 1}] * (1 + retries)


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


class TestDynamoDbExpressions:
    def test_an_update_expression_is_parsed_once_and_still_applied_each_time(
        self, cloud, monkeypatch
    ):
        """Stock moto tokenizes and parses the expression on every request and transact item."""
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser
        from moto.dynamodb.parsing.tokens import ExpressionTokenizer

        tokenized = record_calls(monkeypatch, ExpressionTokenizer, "_make_list")
        parsed = record_calls(monkeypatch, UpdateExpressionParser, "_parse")
        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="tokens",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        expression = "SET #n = if_not_exists(#n, :zero) + :one, note_a = :note"
        for n in range(5):
            dynamodb.update_item(
                TableName="tokens",
                Key={"pk": {"S": "counter"}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#n": "n"},
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":note": {"S": f"update {n}"},
                },
            )
        item = dynamodb.get_item(TableName="tokens", Key={"pk": {"S": "counter"}})["Item"]
        assert (item["n"], item["note_a"]) == ({"N": "5"}, {"S": "update 4"})
        assert len(tokenized) <= 1 and len(parsed) <= 1
        for _ in range(2):  # a malformed expression is refused every time
            with pytest.raises(ClientError, match="ValidationException"):
                dynamodb.update_item(
                    TableName="tokens",
                    Key={"pk": {"S": "counter"}},
                    UpdateExpression="SET n = = :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )

    def test_a_simple_update_skips_motos_walk_and_keeps_conditions_streams_and_errors(
        self, cloud, monkeypatch
    ):
        """Stock moto validates and executes every update through its ten-processor walk."""
        from moto.dynamodb.parsing.validators import UpdateExpressionValidator

        walked = record_calls(monkeypatch, UpdateExpressionValidator, "validate")
        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="steps",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        key = {"pk": {"S": "pay-1"}}
        dynamodb.put_item(
            TableName="steps",
            Item={**key, "version": {"N": "1"}, "status": {"S": "RECEIVED"}, "history": {"L": []}},
        )
        step = {
            "TableName": "steps",
            "Key": key,
            "UpdateExpression": "SET #v = #v + :one, history = list_append(history, :h), "
            "#s = :s REMOVE pending_at",
            "ConditionExpression": "#s = :expected",
            "ExpressionAttributeNames": {"#v": "version", "#s": "status"},
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":h": {"L": [{"S": "VALIDATED"}]},
                ":s": {"S": "VALIDATED"},
                ":expected": {"S": "RECEIVED"},
            },
        }
        dynamodb.transact_write_items(TransactItems=[{"Update": step}])
        again = {**step["ExpressionAttributeValues"], ":expected": {"S": "VALIDATED"}}
        answer = dynamodb.update_item(
            **{**step, "ExpressionAttributeValues": again}, ReturnValues="UPDATED_NEW"
        )
        assert answer["Attributes"]["version"] == {"N": "3"}
        with pytest.raises(ClientError, match="ConditionalCheckFailed") as failed:
            dynamodb.update_item(**step, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        assert failed.value.response["Item"]["version"] == {"N": "3"}
        item = dynamodb.get_item(TableName="steps", Key=key)["Item"]
        assert item["history"] == {"L": [{"S": "VALIDATED"}, {"S": "VALIDATED"}]}
        assert walked == []
        # What the direct path declines still reaches moto, and moto's refusal reaches the client.
        with pytest.raises(ClientError, match="Cannot update attribute pk"):
            dynamodb.update_item(
                TableName="steps",
                Key=key,
                UpdateExpression="SET pk = :v",
                ExpressionAttributeValues={":v": {"S": "pay-2"}},
            )
        assert len(walked) == 1
        streams = cloud.client("dynamodbstreams")
        arn = dynamodb.describe_table(TableName="steps")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [
            (r["dynamodb"].get("OldImage", {}).get("version"), r["dynamodb"]["NewImage"]["version"])
            for r in records
        ] == [(None, {"N": "1"}), ({"N": "1"}, {"N": "2"}), ({"N": "2"}, {"N": "3"})]


class TestDynamoDbQueries:
    def test_a_query_of_the_tables_key_reads_only_that_partition(self, cloud, monkeypatch):
        """Stock moto lists and sorts every item of the table for each Query."""
        from moto.dynamodb.models.table import Table

        listed = []
        all_items = Table.all_items

        def counting(self):
            items = all_items(self)
            listed.append(len(items))
            return items

        dynamodb = cloud.client("dynamodb")
        dynamodb.create_table(
            TableName="trails",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "entity", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "entity", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        for start in range(0, 500, 25):
            dynamodb.batch_write_item(
                RequestItems={
                    "trails": [
                        {
                            "PutRequest": {
                                "Item": {"entity": {"S": f"e-{n % 100}"}, "sk": {"S": f"{n:04d}"}}
                            }
                        }
                        for n in range(start, start + 25)
                    ]
                }
            )
        monkeypatch.setattr(Table, "all_items", counting)
        got = dynamodb.query(
            TableName="trails",
            KeyConditionExpression="entity = :e AND sk > :after",
            ExpressionAttributeValues={":e": {"S": "e-7"}, ":after": {"S": "0100"}},
            ScanIndexForward=False,
            Limit=3,
        )
        assert [item["sk"]["S"] for item in got["Items"]] == ["0407", "0307", "0207"]
        page = dynamodb.query(
            TableName="trails",
            KeyConditionExpression="entity = :e AND sk > :after",
            ExpressionAttributeValues={":e": {"S": "e-7"}, ":after": {"S": "0100"}},
            ScanIndexForward=False,
            ExclusiveStartKey=got["LastEvaluatedKey"],
        )
        assert [item["sk"]["S"] for item in page["Items"]] == ["0107"]
        assert max(listed) <= 5  # the partition's 5 items, not the table's 500
        missing = dynamodb.query(
            TableName="trails",
            KeyConditionExpression="entity = :e",
            ExpressionAttributeValues={":e": {"S": "nobody"}},
        )
        assert missing["Items"] == []
        assert len(dynamodb.scan(TableName="trails")["Items"]) == 500  # scans as before


class TestSqs:
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

    def test_fifo_content_based_deduplication_still_applies(self, cloud):
        url, _ = cloud.create_queue(
            "dedup.fifo", FifoQueue="true", ContentBasedDeduplication="true"
        )
        sqs = cloud.client("sqs")
        for _ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
        read = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert read["Attributes"]["ApproximateNumberOfMessages"] == "1"
        plain, _ = cloud.create_queue("no-dedup.fifo", FifoQueue="true")
        with pytest.raises(ClientError):
            sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")


class TestKms:
    def test_rotation_period_reads_back_as_sent_and_defaults_to_365_days(self, cloud):
        kms = cloud.client("kms")
        custom = kms.create_key()["KeyMetadata"]["KeyId"]
        default = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=custom, RotationPeriodInDays=90)
        kms.enable_key_rotation(KeyId=default)
        assert kms.get_key_rotation_status(KeyId=custom)["RotationPeriodInDays"] == 90
        assert kms.get_key_rotation_status(KeyId=default)["RotationPeriodInDays"] == 365


class TestStepFunctions:
    def test_validate_accepts_a_definition_with_states(self, cloud):
        answer = cloud.client("stepfunctions").validate_state_machine_definition(
            definition=PASS_MACHINE
        )
        assert (answer["result"], answer["diagnostics"]) == ("OK", [])

    @pytest.mark.parametrize("definition", ["not json", "[]", '{"StartAt": "A"}'])
    def test_validate_rejects_anything_else(self, cloud, definition):
        answer = cloud.client("stepfunctions").validate_state_machine_definition(
            definition=definition
        )
        assert answer["result"] == "FAIL"
        assert [d["code"] for d in answer["diagnostics"]] == ["SCHEMA_VALIDATION_FAILED"]

    def test_list_versions_answers_newest_first(self, cloud):
        sfn = cloud.client("stepfunctions")
        role = f"arn:aws:iam::{ACCOUNT_ID}:role/sfn"
        unpublished = sfn.create_state_machine(
            name="unpublished", definition=PASS_MACHINE, roleArn=role
        )["stateMachineArn"]
        assert (
            sfn.list_state_machine_versions(stateMachineArn=unpublished)["stateMachineVersions"]
            == []
        )

        arn = sfn.create_state_machine(
            name="published", definition=PASS_MACHINE, roleArn=role, publish=True
        )["stateMachineArn"]
        sfn.update_state_machine(stateMachineArn=arn, definition=PASS_MACHINE, publish=True)
        versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
        assert [v["stateMachineVersionArn"] for v in versions] == [f"{arn}:2", f"{arn}:1"]

    def test_unnamed_execution_gets_a_uuid_and_runs(self, cloud):
        sfn = cloud.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="runs", definition=PASS_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sfn"
        )["stateMachineArn"]
        first = sfn.start_execution(stateMachineArn=arn, input='{"a": 1}')["executionArn"]
        second = sfn.start_execution(stateMachineArn=arn)["executionArn"]
        assert first != second
        described = wait_for(
            lambda: (d := sfn.describe_execution(executionArn=first))["status"] != "RUNNING" and d
        )
        uuid.UUID(described["name"])
        assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"a": 1})


class TestMemoryAndCopies:
    """What the server keeps per payment and copies per update (the soak's RSS and CPU)."""

    def _table(self, dynamodb, name, **extra):
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            **extra,
        )

    def test_an_update_copies_the_item_only_for_a_stream(self, cloud, monkeypatch):
        """Stock moto deep-copies the item before every update in a transaction, stream or not.
        (A plain UpdateItem request is copied once more for its ReturnValues; left as it is.)"""
        import copy

        from moto.dynamodb.models.dynamo_type import Item

        copied = []
        deepcopy = copy.deepcopy

        def counting(value, memo=None):
            if isinstance(value, Item):
                copied.append(value)
            return deepcopy(value, memo)

        monkeypatch.setattr(copy, "deepcopy", counting)
        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "streamless")
        stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        self._table(dynamodb, "streamed", StreamSpecification=stream)
        for table in ("streamless", "streamed"):
            for n in range(3):  # as the processor's transactions update payments
                update = {
                    "TableName": table,
                    "Key": {"pk": {"S": "a"}},
                    "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": str(n)}},
                    "ConditionExpression": "attribute_not_exists(n) OR n < :n",
                }
                dynamodb.transact_write_items(TransactItems=[{"Update": update}])
            item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]
            assert item["n"] == {"N": "2"}
            if table == "streamless":
                # The transaction's rollback journal of the two updates of an existing item
                # (stock moto copied it a second time for each, for no stream).
                assert len(copied) == 2
        assert len(copied) == 2 + 4  # and the streamed table's old images as well
        streams = cloud.client("dynamodbstreams")
        arn = dynamodb.describe_table(TableName="streamed")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [r["dynamodb"].get("OldImage", {}).get("n") for r in records] == [
            None,
            {"N": "0"},
            {"N": "1"},
        ]

    def test_a_condition_expression_is_lexed_once_and_still_checked_each_time(
        self, cloud, monkeypatch
    ):
        from moto.dynamodb.comparisons import ConditionExpressionParser

        lexed = []
        lex_one = ConditionExpressionParser._lex_one_node

        def counting(self, remaining):
            lexed.append(self.condition_expression)
            return lex_one(self, remaining)

        monkeypatch.setattr(ConditionExpressionParser, "_lex_one_node", counting)
        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "conditions")
        condition = "attribute_not_exists(pk) OR version_a < :version"
        for version in (1, 2, 2):
            try:
                dynamodb.put_item(
                    TableName="conditions",
                    Item={"pk": {"S": "a"}, "version_a": {"N": str(version)}},
                    ConditionExpression=condition,
                    ExpressionAttributeValues={":version": {"N": str(version)}},
                )
            except ClientError as exc:
                assert version == 2 and "ConditionalCheckFailed" in str(exc)
        item = dynamodb.get_item(TableName="conditions", Key={"pk": {"S": "a"}})["Item"]
        assert item["version_a"] == {"N": "2"}
        # One pass over the text: a call per token or space (8 tokens, 4 spaces), not three.
        assert lexed.count(condition) == 12
        lexed.clear()
        for _ in range(2):  # a malformed condition is refused every time (moto answers 500)
            with pytest.raises(ClientError):
                dynamodb.put_item(
                    TableName="conditions",
                    Item={"pk": {"S": "b"}},
                    ConditionExpression="attribute_not_exists(pk",
                    ExpressionAttributeValues={":v": {"S": "b"}},
                )

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
        assert isinstance(queue.deleted_messages, patches.HandleDigests)
        assert handle in queue.deleted_messages and len(queue.deleted_messages) == 1
        assert "not-a-handle" not in queue.deleted_messages
        with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
            sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")

    def test_a_topic_keeps_only_its_latest_sent_notifications(self, cloud):
        """Stock moto keeps every message ever published on the topic object."""
        from moto.sns.models import sns_backends

        sns = cloud.client("sns")
        arn = sns.create_topic(Name="bounded")["TopicArn"]
        url, queue_arn = cloud.create_queue("bounded-subscriber")
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        total = patches.SENT_NOTIFICATIONS_KEPT + 20
        for start in range(0, total, 10):
            sns.publish_batch(
                TopicArn=arn,
                PublishBatchRequestEntries=[
                    {"Id": str(n), "Message": f"event {start + n}"} for n in range(10)
                ],
            )
        topic = sns_backends[ACCOUNT_ID]["us-east-1"].topics[arn]
        assert len(topic.sent_notifications) == patches.SENT_NOTIFICATIONS_KEPT
        assert topic.sent_notifications[-1][1] == f"event {total - 1}"
        depth = cloud.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        assert depth == str(total)  # every message still reached the subscriber

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

    def test_an_update_expression_tree_is_copied_without_pickles_protocol(self, cloud, monkeypatch):
        """Stock moto copies each node of the tree through ``__reduce_ex__``."""
        import copy

        from moto.dynamodb.parsing.ast_nodes import Node
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser

        tree = UpdateExpressionParser.make(
            "SET #v = #v + :one, history = list_append(history, :h) REMOVE pending_at"
        )
        reconstructed = []
        reconstruct = copy._reconstruct

        def counting(x, memo, *args, **kwargs):
            reconstructed.append(type(x).__name__)
            return reconstruct(x, memo, *args, **kwargs)

        monkeypatch.setattr(copy, "_reconstruct", counting)
        copied = copy.deepcopy(tree)
        assert reconstructed == []

        def shape(node, parent=None):
            assert node.parent is parent or parent is None
            kids = [shape(c, node) for c in node.children or [] if isinstance(c, Node)]
            leaves = [c for c in node.children or [] if not isinstance(c, Node)]
            return (type(node).__name__, leaves, kids)

        assert shape(copied) == shape(tree)
        originals = {id(n) for n in _nodes(tree)}
        assert not originals & {id(n) for n in _nodes(copied)}  # nothing shared

        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "trees")
        for n in range(2):
            dynamodb.update_item(
                TableName="trees",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET n = if_not_exists(n, :zero) + :one, h = list_append("
                "if_not_exists(h, :empty), :h)",
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":empty": {"L": []},
                    ":h": {"L": [{"S": f"step {n}"}]},
                },
            )
        item = dynamodb.get_item(TableName="trees", Key={"pk": {"S": "a"}})["Item"]
        assert item["n"] == {"N": "2"}
        assert item["h"] == {"L": [{"S": "step 0"}, {"S": "step 1"}]}

    def test_items_are_measured_once_and_share_their_repeated_strings(self, cloud, monkeypatch):
        """Stock moto re-measures the whole item for each attribute it stores, and every item
        keeps its own copy of every string its request held."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodb.models.dynamo_type import DynamoType

        dynamodb = cloud.client("dynamodb")
        self._table(dynamodb, "shared")
        now = "2026-11-28T01:02:03.456789+00:00"
        note = "a note longer than forty characters, kept as it is"
        for n in range(2):
            item = {
                "pk": {"S": f"pay-{n}"},
                **{f"field_{i:02d}": {"S": "COMPLETED"} for i in range(20)},
                "created_at": {"S": now},
                "history": {"L": [{"M": {"status": {"S": "RECEIVED"}, "at": {"S": now}}}]},
                "note": {"S": note},
                "tags": {"SS": ["EUR", "batch"]},
            }
            with monkeypatch.context() as patched:
                measured = record_calls(patched, DynamoType, "size")
                dynamodb.put_item(TableName="shared", Item=item)
            assert dynamodb.get_item(TableName="shared", Key={"pk": item["pk"]})["Item"] == item
            # About once per attribute and nested value: 25 attributes, 31 measures per put
            # (stock moto measures every stored attribute again for each new one: over 325).
            assert len(measured) <= 40

        table = dynamodb_backends[ACCOUNT_ID]["us-east-1"].get_table("shared")
        first, second = (table.get_item(DynamoType({"S": f"pay-{n}"})).attrs for n in range(2))

        def stored_key(mapping, name):
            return next(k for k in mapping if k == name)

        assert stored_key(first, "created_at") is stored_key(second, "created_at")
        assert first["created_at"].value is second["created_at"].value
        history_1, history_2 = (a["history"].value[0].value for a in (first, second))
        assert history_1["at"].value is first["created_at"].value
        assert stored_key(history_1, "status") is stored_key(history_2, "status")
        assert first["tags"].value[0] is second["tags"].value[0]
        assert first["note"].value == second["note"].value
        assert first["note"].value is not second["note"].value  # long strings are not shared

        with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size"):
            dynamodb.put_item(
                TableName="shared",
                Item={"pk": {"S": "big"}, **{f"b{i}": {"S": "x" * 100_000} for i in range(5)}},
            )


def _nodes(node):
    from moto.dynamodb.parsing.ast_nodes import Node

    yield node
    for child in node.children or []:
        if isinstance(child, Node):
            yield from _nodes(child)


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
