"""A moto world shaped like the deployed stack (docs/CONTRACT.md), plus realistic events.

Used by the functional tests and by scripts/bench.py. Table keys, the queue/DLQ pair and the
names of environment variables follow the contract; nothing of the project's own code is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from payments import env

from localcloud.services.dynamodb.transactions import isolate_transactions

REGION = "us-east-1"
WEBHOOK_SECRET = "test-webhook-secret"
ORIGIN = "https://payments.example.com"
# The id of the deployment's own API key (the default client's), as the stack hands it over.
DEFAULT_KEY_ID = "defaultkey01"


@dataclass
class World:
    env: dict[str, str]
    dynamodb: Any
    sqs: Any
    sns: Any
    s3: Any
    queue_url: str
    dlq_url: str
    events_queue_url: str
    bucket: str
    extra: dict[str, Any] = field(default_factory=dict)

    def table_items(self, name_var: str) -> list[dict[str, Any]]:
        from payments.repository import deserialize

        items, kwargs = [], {"TableName": self.env[name_var]}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items += [deserialize(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def payments(self) -> list[dict[str, Any]]:
        return self.table_items(env.PAYMENTS_TABLE)

    def audit(self) -> list[dict[str, Any]]:
        return self.table_items(env.AUDIT_LOG_TABLE)

    def receive_all(self, queue_url: str | None = None, *, delete: bool = True) -> list[dict]:
        url = queue_url or self.queue_url
        out = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                return out
            out += got
            if delete:
                for m in got:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def stream_records(self, reader: str = "publisher") -> list[dict[str, Any]]:
        """New records of the audit log's stream since ``reader``'s last call (as Lambda gets
        them: each event source mapping has its own place in the stream)."""
        streams = boto3.client("dynamodbstreams", region_name=REGION)
        arn = self.dynamodb.describe_table(TableName=self.env[env.AUDIT_LOG_TABLE])["Table"][
            "LatestStreamArn"
        ]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        after = self.extra.get(f"stream_after:{reader}")
        iterator = streams.get_shard_iterator(
            StreamArn=arn,
            ShardId=shard["ShardId"],
            **(
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                if after
                else {"ShardIteratorType": "TRIM_HORIZON"}
            ),
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records += page["Records"]
            iterator = page.get("NextShardIterator")
        if records:
            self.extra[f"stream_after:{reader}"] = records[-1]["dynamodb"]["SequenceNumber"]
        return [{**r, "eventSourceARN": arn} for r in records]

    def drain_outbox(self, *, batch_size: int = 100) -> int:
        """Run the real publisher handler over the new audit entries, as the stream mapping
        does; returns how many records it was given. A reported failure raises."""
        from handlers import publisher

        records = self.stream_records()
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            result = publisher.handler({"Records": batch}, LambdaContext("payments-publisher"))
            assert result == {"batchItemFailures": []}, result
        return len(records)

    def drain_archive(self, *, batch_size: int = 1000) -> list[str]:
        """Run the real archiver handler over the new audit entries, as its mapping does; the
        keys of the objects it wrote."""
        from handlers import archiver

        records = self.stream_records("archiver")
        keys = []
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            result = archiver.handler({"Records": batch}, LambdaContext("payments-archiver"))
            keys.append(result["key"])
        return keys

    def events(self) -> list[dict[str, Any]]:
        """Events published on payment-events (after draining the outbox), via the subscriber."""
        self.drain_outbox()
        return [
            json.loads(json.loads(m["Body"])["Message"])
            for m in self.receive_all(self.events_queue_url)
        ]


def build_world(suffix: str = "test", *, chunk_rows: int = 50) -> World:
    """Create the resources in the active moto context and export the function environment."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    names = {
        env.PAYMENTS_TABLE: f"payments-{suffix}",
        env.PROCESSING_STATUS_TABLE: f"payments-processing-status-{suffix}",
        env.AUDIT_LOG_TABLE: f"payments-audit-log-{suffix}",
    }

    def index(
        name: str, hash_key: str, range_key: str, projection: str, *include: str
    ) -> dict[str, Any]:
        """Indexes as lib/tables.py declares them (the projection matters: KEYS_ONLY)."""
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": projection}
            | ({"NonKeyAttributes": list(include)} if include else {}),
        }

    def attributes(*names: str) -> list[dict[str, str]]:
        return [{"AttributeName": n, "AttributeType": "S"} for n in names]

    dynamodb.create_table(
        TableName=names[env.PAYMENTS_TABLE],
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=attributes(
            "payment_id", "batch_id", "pending_shard", "pending_at", "minimise_shard", "final_at"
        ),
        KeySchema=[{"AttributeName": "payment_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            index("batch_id-index", "batch_id", "payment_id", "ALL"),
            index("pending-index", "pending_shard", "pending_at", "KEYS_ONLY"),
            index("minimise-index", "minimise_shard", "final_at", "KEYS_ONLY"),
        ],
    )
    dynamodb.create_table(
        TableName=names[env.PROCESSING_STATUS_TABLE],
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=attributes("pk", "sk", "running", "started_at"),
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            index("running-index", "running", "started_at", "INCLUDE", "batch_id", "run")
        ],
    )
    dynamodb.create_table(
        TableName=names[env.AUDIT_LOG_TABLE],
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=attributes("entity_id", "sk"),
        KeySchema=[
            {"AttributeName": "entity_id", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName=f"payments-processing-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"payments-processing-{suffix}",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    events_queue_url = sqs.create_queue(QueueName=f"payments-events-consumer-{suffix}")["QueueUrl"]
    events_queue_arn = sqs.get_queue_attributes(
        QueueUrl=events_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name=f"payments-payment-events-{suffix}")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=events_queue_arn)
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"payments-batch-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # The audit archive as lib/storage.py makes it (dev: governance mode, one day).
    archive_bucket = f"payments-audit-archive-{suffix}"
    s3.create_bucket(Bucket=archive_bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=archive_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    ssm = boto3.client("ssm", region_name=REGION)
    secret_name = f"/payments/{suffix}/webhook-secret"
    ssm.put_parameter(Name=secret_name, Value=WEBHOOK_SECRET, Type="SecureString")
    function_env = {
        env.ENVIRONMENT: "dev",
        **names,
        env.PROCESSING_QUEUE_URL: queue_url,
        env.PAYMENT_EVENTS_TOPIC_ARN: topic_arn,
        env.BATCH_BUCKET: bucket,
        env.AUDIT_ARCHIVE_BUCKET: archive_bucket,
        env.MAX_PAYMENT_AMOUNT: "1000000",
        env.WEBHOOK_SECRET_PARAMETER: secret_name,
        env.BATCH_CHUNK_ROWS: str(chunk_rows),
        env.CORS_ALLOWED_ORIGIN: ORIGIN,
        env.DEFAULT_API_KEY_ID: DEFAULT_KEY_ID,
        "POWERTOOLS_SERVICE_NAME": "payments",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_LAMBDA_FUNCTION_NAME": f"payments-api-{suffix}",
    }
    os.environ.update(function_env)
    return World(
        env=function_env,
        dynamodb=dynamodb,
        sqs=sqs,
        sns=sns,
        s3=s3,
        queue_url=queue_url,
        dlq_url=dlq_url,
        events_queue_url=events_queue_url,
        bucket=bucket,
    )


@dataclass
class LambdaContext:
    function_name: str = "payments-api-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:payments-api-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def api_event(
    method: str,
    path: str,
    *,
    body: str | bytes | dict | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
    key_id: str | None = DEFAULT_KEY_ID,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event as the `{proxy+}`-less resources deliver it;
    ``key_id`` is the id of the API key API Gateway checked (the default client's)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, bytes) and not base64_body:
        body = body.decode("utf-8")
    if base64_body and body is not None:
        raw = body if isinstance(body, bytes) else body.encode()
        body = base64.b64encode(raw).decode()
    all_headers = {
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "Origin": ORIGIN,
        "x-api-key": "test-key",
        **(headers or {}),
    }
    resource = path
    path_parameters = None
    for prefix, name in (("/payments/", "payment_id"), ("/batches/", "batch_id")):
        if path.startswith(prefix) and len(path) > len(prefix):
            resource = prefix + "{" + name + "}"
            path_parameters = {name: path[len(prefix) :]}
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/test{path}",
            "stage": "test",
            "requestId": request_id,
            "accountId": "123456789012",
            "apiId": "abc123",
            "identity": {"sourceIp": "203.0.113.10", "apiKey": "test-key", "apiKeyId": key_id},
            "requestTimeEpoch": 1_700_000_000_000,
        },
        "body": body,
        "isBase64Encoded": base64_body,
    }


def sign(body: bytes | str, secret: str = WEBHOOK_SECRET, *, at: int | None = None) -> str:
    """The fraud provider's ``X-Signature``: HMAC-SHA256 of ``"<t>.<body>"``, signed now."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event as the event source mapping delivers it, from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


_sequencer = iter(range(0x0055AED6DCD90281, 1 << 64))
# S3's sequencers differ in length; AWS orders two by padding the shorter on the right with zeros
# (S3 User Guide, "Event message structure"). Fixtures make every length from 16 to 24 digits.
SEQUENCER_LENGTHS = range(16, 25)


def next_sequencer(length: int = 18) -> str:
    """A sequencer greater than every one made before it (S3's rule), ``length`` hex digits: the
    upload order in the first 16, then digits that only a wrong padding would let matter."""
    order = next(_sequencer)
    extra = length - 16
    tail = f"{(order * 0x9E3779B1) % 16**extra:0{extra}X}" if extra > 0 else ""
    return f"{order:016X}{tail}"


def s3_event(
    bucket: str,
    key: str,
    version_id: str | None,
    size: int,
    *,
    sequencer: str | None = None,
    sequencer_length: int = 18,
) -> dict[str, Any]:
    """An S3 ObjectCreated event; each new event gets a greater ``sequencer`` (upload order)."""
    sequencer = sequencer or next_sequencer(sequencer_length)
    obj: dict[str, Any] = {"key": key, "size": size, "sequencer": sequencer}
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


class _Http:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


def error_answer(code: str, status: int) -> tuple[_Http, dict[str, Any]]:
    """What a ``before-call`` handler returns to answer a call with an AWS error instead."""
    return _Http(status), {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def inject_failures(
    client: Any,
    operation: str,
    *,
    times: int,
    code: str = "ProvisionedThroughputExceededException",
    parsed: Any = None,
    status: int = 400,
    when: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, int]:
    """Make the next ``times`` calls of ``operation`` on ``client`` fail without reaching moto.

    ``parsed`` may be a callable receiving the call's API parameters (e.g. to answer
    SendMessageBatch with every entry in ``Failed``); ``when`` one choosing, from the same
    parameters, which calls fail (all by default). Returns a live counter of injected faults.
    Safe with calls from several threads (a batch chunk's workers share one client).
    """
    state = {"left": times, "injected": 0}
    service = client.meta.service_model.service_id.hyphenize()
    lock = threading.Lock()
    # botocore fires both events of one call on the calling thread.
    last = threading.local()

    def remember(params: dict[str, Any], **_: Any) -> None:
        last.params = dict(params)

    def fail(**_: Any) -> Any:
        params = getattr(last, "params", {})
        if when is not None and not when(params):
            return None
        with lock:
            if state["left"] <= 0:
                return None
            state["left"] -= 1
            state["injected"] += 1
        if callable(parsed):
            return _Http(200), parsed(dict(params))
        body = parsed or {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return _Http(status), body

    client.meta.events.register(f"before-parameter-build.{service}.{operation}", remember)
    client.meta.events.register(f"before-call.{service}.{operation}", fail)
    return state


# The list of entries of each batch call whose answer can fail some entries and not others.
BATCH_ENTRIES = {"PublishBatch": "PublishBatchRequestEntries", "SendMessageBatch": "Entries"}


def withhold_entries(
    operation: str, params: dict[str, Any], failing: Callable[[int, dict[str, Any]], bool]
) -> list[str]:
    """Take the entries ``failing(index, entry)`` picks out of a batch call's parameters (they
    never reach moto); their ``Id``s, for :func:`answer_failed` to report."""
    entries = params[BATCH_ENTRIES[operation]]
    kept = [e for i, e in enumerate(entries) if not failing(i, e)]
    withheld = [e["Id"] for e in entries if e not in kept]
    params[BATCH_ENTRIES[operation]] = kept
    return withheld


def answer_failed(parsed: dict[str, Any] | None, ids: list[str]) -> dict[str, Any]:
    """A batch call's answer with ``ids`` among its ``Failed`` entries, as SNS and SQS report
    entries that failed while the others went through (``parsed`` None: none was sent)."""
    answer = parsed if parsed is not None else {"Successful": [], "ResponseMetadata": {}}
    answer.setdefault("Failed", [])
    answer["Failed"] += [
        {"Id": i, "Code": "InternalError", "Message": "injected", "SenderFault": False} for i in ids
    ]
    return answer


def inject_partial_failures(
    client: Any,
    operation: str,
    *,
    failing: Callable[[int, dict[str, Any]], bool],
    times: int = 1,
) -> dict[str, int]:
    """The next ``times`` calls of a batch ``operation`` that have an entry ``failing`` picks
    send only the others and answer the picked ones as ``Failed``: what AWS does when some
    entries of a call fail. Returns a live counter of calls answered so."""
    state = {"left": times, "injected": 0}
    service = client.meta.service_model.service_id.hyphenize()
    withheld = threading.local()
    lock = threading.Lock()  # the publisher's calls come from several threads

    def build(params: dict[str, Any], **_: Any) -> None:
        withheld.ids, withheld.all = [], False
        with lock:
            if state["left"] <= 0:
                return
            withheld.ids = withhold_entries(operation, params, failing)
            if withheld.ids:
                state["left"] -= 1
                state["injected"] += 1
        withheld.all = not params[BATCH_ENTRIES[operation]]

    def before(**_: Any) -> Any:
        # Every entry withheld: answered all failed without a call (an empty one is an error).
        return (_Http(200), answer_failed(None, withheld.ids)) if withheld.all else None

    def after(parsed: dict[str, Any], **_: Any) -> None:
        if withheld.ids and not withheld.all:
            answer_failed(parsed, withheld.ids)

    client.meta.events.register(f"before-parameter-build.{service}.{operation}", build)
    client.meta.events.register(f"before-call.{service}.{operation}", before)
    client.meta.events.register(f"after-call.{service}.{operation}", after)
    return state


class CallCounter:
    """Counts AWS API calls by operation with botocore's ``before-call`` event."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, model: Any = None, **_: Any) -> None:
        name = f"{model.service_model.service_id.hyphenize()}:{model.name}"
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def attach(self, *clients: Any) -> CallCounter:
        for client in clients:
            client.meta.events.register("before-call", self)
        return self

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()


@contextmanager
def serialized_moto_transactions() -> Iterator[None]:
    """Run moto's TransactWriteItems one at a time, as DynamoDB isolates transactions (the local
    cloud applies the same patch; its docstring says why)."""
    undo = isolate_transactions()
    try:
        yield
    finally:
        undo()
