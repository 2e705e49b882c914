"""What every service shares: moto's server and its model base.

Requests reach moto through werkzeug's development server and one dispatcher for all services;
these patches make that path cost what a request needs (connections kept alive, a backend found
once per credential scope, no model kept for moto's test helpers) and make an SDK's retry of a
write that already took effect safe, as AWS's idempotency tokens do.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("localcloud.server")


def models_not_tracked() -> None:
    """Stop keeping every model object moto ever made.

    ``BaseModel.__new__`` appends every instance to its class's ``instances_tracked`` list, for
    moto's test helpers: every DynamoDB item (and every copy of one a transaction's rollback or
    an update's answer makes), every SQS message, for the server's life, whatever was deleted.
    Only S3's keys and multipart uploads stay tracked: S3's reset closes their buffers through
    those lists. Measured on the 100,000-row soak: the server grew about 21 KB per processed
    payment before (2 MB/s at 95 payments/s), about 6 KB after.
    """
    from moto.core.common_models import BaseModel
    from moto.s3.models import FakeKey, FakeMultipart

    kept = (FakeKey, FakeMultipart)

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = object.__new__(cls)
        if issubclass(cls, kept):
            cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
        return instance

    BaseModel.__new__ = new  # type: ignore[method-assign, assignment]


def server_keeps_connections_alive() -> None:
    """Answer requests on kept-alive connections instead of one connection (and thread) each.

    Werkzeug's development server, which moto's runs on, closes every connection after one
    response and then waits 10 ms for stray request bytes before it lets go, so each SDK call of
    a function paid a TCP connect, a new server thread and 10 ms of idle time: the processor
    makes three calls per payment. Requests with a known body length (every SDK call but
    streamed uploads and ``Expect: 100-continue``) are answered here with a ``Content-Length``
    and the connection is kept for the client's next request, as AWS's endpoints do; the body
    is read to its declared end so the next request starts where it should. Anything else takes
    werkzeug's way and closes as before.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import WSGIRequestHandler

    def run_wsgi(self: MotoRequestHandler) -> None:
        length = self.headers.get("Content-Length")
        if (
            self.request_version != "HTTP/1.1"
            or self.headers.get("Transfer-Encoding")
            or self.headers.get("Expect")
            or (length is not None and not length.isdigit())
        ):
            self.close_connection = True
            return WSGIRequestHandler.run_wsgi(self)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = self.rfile.read(int(length)) if length else b""
        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):  # type: ignore[no-untyped-def]
            started[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            log.exception("request %s %s failed", self.command, self.path)
            started[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
        status, headers = started
        payload = b"".join(chunks)
        code, _, message = status.partition(" ")
        self.send_response(int(code), message)
        declared = False
        for name, value in headers:
            if name.lower() == "connection":
                continue
            declared = declared or name.lower() == "content-length"
            self.send_header(name, value)
        if not declared:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:  # the client asked for it
            self.send_header("Connection", "close")
        # Head and body in one write: written apart on a kept connection, the body would wait
        # for the client's delayed ACK of the head (Nagle), up to 40 ms per request.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and int(code) not in (204, 304):
            self._headers_buffer.append(payload)
        self.flush_headers()

    MotoRequestHandler.run_wsgi = run_wsgi


# Services whose signed requests moto routes by the credential scope alone (its
# ``infer_service_region_host`` makes ``<service>.<region>.amazonaws.com`` of them, or
# ``dynamodb``/``dynamodbstreams`` by the target): the ones the platform's data plane calls.
_ROUTED_BY_SCOPE = frozenset({"sqs", "sns", "lambda", "states", "ssm", "kms", "logs", "sts"})


def server_routes_by_credential_scope() -> None:
    """Remember which of moto's service apps serves a credential scope.

    For every request moto's server finds the backend by trying the host against the URL pattern
    of every service, then by parsing the signature's credential scope and trying again, under
    a server-wide lock: about a tenth of the server's time under load went there. For the
    services above the answer depends only on the scope's service and region (and, for DynamoDB,
    whether the target is the Streams API), so it is looked up once per key; anything else takes
    moto's way.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_application

    def route_key(environ: dict[str, Any]) -> tuple[str, ...] | None:
        path = environ.get("PATH_INFO", "")
        if not isinstance(path, str) or path.startswith(("/moto-api", "/latest/")):
            return None
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        try:
            _, _, region, service, _ = auth.split(",")[0].split()[1].split("/")
        except (IndexError, ValueError):
            return None
        if service == "dynamodb":
            target = environ.get("HTTP_X_AMZ_TARGET") or ""
            if target.startswith("DynamoDBStreams"):
                return ("dynamodbstreams",)
            if target.startswith("DynamoDB_2012"):
                return ("dynamodb",)
            return None
        if service in _ROUTED_BY_SCOPE:
            host = environ.get("HTTP_HOST", "")
            # A service host name in the URL is matched first by moto; keep that path too.
            return None if "amazonaws.com" in host else (service, region)
        return None

    def get_application(self: DomainDispatcherApplication, environ: dict[str, Any]) -> Any:
        key = route_key(environ)
        if key is None:
            return original(self, environ)
        routes = self.__dict__.setdefault("_localcloud_routes", {})
        app = routes.get(key)
        if app is None:
            app = routes[key] = original(self, environ)
        return app

    DomainDispatcherApplication.get_application = get_application


# -- retried requests -----------------------------------------------------------------------------

# Answers remembered for retries: the last ones, small ones only (a retry follows its attempt
# within seconds to minutes; a large answer is a read, which a retry simply repeats).
REPLAY_ENTRIES = 1024

REPLAY_MAX_BODY_BYTES = 64 * 1024

# How long a retry waits for its first attempt, still being carried out, to answer.
REPLAY_WAIT_SECONDS = 300.0

_READS = ("GET", "HEAD", "OPTIONS")


class _Attempt:
    """The first attempt of one SDK invocation: its answer, once it has one."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.ended = 0.0
        self.done = threading.Event()
        self.started: tuple[str, list[tuple[str, str]]] | None = None  # a 2xx status and headers
        self.answer: tuple[str, list[tuple[str, str]], bytes] | None = None  # set when complete


def retried_requests_answered_once() -> None:
    """Answer a retried request with the answer its first attempt got, instead of redoing it.

    AWS SDKs send the same ``amz-sdk-invocation-id`` header with every attempt of one call
    (botocore and the Go SDK that the provider uses alike), and ``amz-sdk-request: attempt=N``.
    A retry follows an attempt whose answer the client did not get or could not use: if that
    attempt took effect, moto carries the request out a second time, and a create answers
    ``ResourceConflictException`` (Lambda ``CreateFunction``: the provider then retries for five
    minutes, holding its lock on every other function's create, and fails the deploy) or creates
    a duplicate (an event source mapping, a REST API). AWS makes such retries safe with its own
    idempotency tokens; here every write is remembered by its invocation id for the time a retry
    can follow it, and a retry gets the first attempt's successful answer (waiting for it when
    the first attempt is still running). A first attempt that failed leaves nothing to replay,
    so its retry runs as usual. Reads are never remembered.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original_call = DomainDispatcherApplication.__call__
    attempts: OrderedDict[str, _Attempt] = OrderedDict()
    lock = threading.Lock()

    def call(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation or environ.get("REQUEST_METHOD") in _READS:
            return original_call(self, environ, start_response)
        with lock:
            first = attempts.get(invocation)
            if first is None:
                attempts[invocation] = attempt = _Attempt()
                while len(attempts) > REPLAY_ENTRIES:
                    attempts.popitem(last=False)
        if first is not None:
            first.done.wait(REPLAY_WAIT_SECONDS)
            if first.answer is not None:
                status, headers, body = first.answer
                log.warning(
                    "%s %s %s retried (%s, invocation %s): answered with its first attempt's %s "
                    "(that attempt took %.1f s and answered %.1f s before this retry)",
                    _api(environ),
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                    environ.get("HTTP_AMZ_SDK_REQUEST", "attempt ?"),
                    invocation,
                    status,
                    first.ended - first.began,
                    time.monotonic() - first.ended,
                )
                start_response(status, headers)
                return [body]
            return original_call(self, environ, start_response)
        try:
            return _remember(
                original_call(self, environ, _capture(attempt, start_response)), attempt
            )
        finally:
            attempt.ended = time.monotonic()
            attempt.done.set()

    DomainDispatcherApplication.__call__ = call
    _log_dropped_connections()


def _log_dropped_connections() -> None:
    """Say when an answer could not be delivered; werkzeug drops the error silently.

    A retry that the patch above answers means the client did not get or could not use the first
    answer. When the server could not send it (the client had closed or reset the connection),
    this line names the request; when no such line precedes a replayed retry, the answer was
    sent whole and lost on the client's side.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    def connection_dropped(self: Any, error: BaseException, environ: Any = None) -> None:
        environ = environ or getattr(self, "environ", None) or {}
        log.warning(
            "%s %s %s: the client's connection dropped before the answer was sent (%s, "
            "invocation %s)",
            _api(environ),
            environ.get("REQUEST_METHOD", getattr(self, "command", "?")),
            environ.get("PATH_INFO", getattr(self, "path", "?")),
            type(error).__name__,
            environ.get("HTTP_AMZ_SDK_INVOCATION_ID", "-"),
        )

    MotoRequestHandler.connection_dropped = connection_dropped


def _api(environ: dict[str, Any]) -> str:
    """The service and operation, as far as the headers tell (the SDK's user agent names the
    service; JSON protocols name the operation in X-Amz-Target)."""
    agent = environ.get("HTTP_USER_AGENT", "")
    service = next((part for part in agent.split() if part.startswith("api/")), "api/?")
    return f"{service} {environ.get('HTTP_X_AMZ_TARGET', '')}".strip()


def _capture(attempt: _Attempt, start_response: Callable[..., Any]) -> Callable[..., Any]:
    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status[:1] == "2":
            attempt.started = (status, list(headers))
        return start_response(status, headers, exc_info)

    return capture


def _remember(body: Iterable[bytes], attempt: _Attempt) -> list[bytes]:
    """The answer's body, read whole; kept for a retry when the answer is a small success."""
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    if attempt.started is not None and len(data) <= REPLAY_MAX_BODY_BYTES:
        attempt.answer = (*attempt.started, data)
    return [data]
