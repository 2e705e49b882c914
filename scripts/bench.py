"""Runtime benchmarks (`make bench`): AWS calls, rows/s, chunk wall time, memory, cold start. It is
one idea: the figures `make bench` prints, one section after another, in the order printed.

Prints figures; asserts nothing about time. Everything runs in-process against moto, so absolute
speeds are moto's, not AWS's; call counts and memory profiles carry over. The 1M-row file is
generated streaming and processed in *sampled* chunks (start, quartiles, end) because driving all
200 chunks through moto's in-memory DynamoDB takes a long time; the output says so and
extrapolates from the measured per-chunk figures.

A chunk's writes run on ``WRITE_WORKERS`` threads. In-process against moto that cannot be faster
than one thread (moto's work holds the GIL, and its transactions run one at a time here), so the
chunk wall time is also measured with a simulated per-call network latency (a sleep, which
releases the GIL as a socket wait does), and the client's own CPU per chunk with the chunk's
writes answered by stubs instead of moto. ``--quick`` runs only the calls and chunk sections.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda")]
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_LOG_LEVEL="ERROR",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from tests.functional.batch_driver import chunk_inputs  # noqa: E402
from tests.functional.world import (  # noqa: E402
    CallCounter,
    LambdaContext,
    api_event,
    build_world,
    serialized_moto_transactions,
)

LAMBDA_TIMEOUT_S = 300
CHUNK_ROWS = 5000
# Assumed AWS latency per write call from Lambda in the same region, a p99-ish figure (a p50 is
# nearer 10 ms); the estimates below scale with it.
CALL_LATENCY_S = 0.025
# A new on-demand table serves up to 4,000 write units/s at first and doubles with its peak; by
# default one table may not exceed 40,000/s (an account quota). A transactional write costs 2
# units per 1 KB item, and a batch row is 2 items (payment + audit entry).
NEW_TABLE_WRITE_UNITS = 4_000
TABLE_QUOTA_WRITE_UNITS = 40_000
WRITE_UNITS_PER_ROW = 4
BATCH_TASKS_VCPU = 1024 / 1769  # Lambda: one full vCPU at 1,769 MB; batch-tasks has 1,024 MB
ROW = "{:012d},{:>6}.{:02d},USD\n"  # fixed width: byte offsets of any row are computable
HEADER = "payment_id,amount,currency\n"


def skip_moto_transaction_snapshots() -> None:
    """moto deep-copies the whole table once per *item* of a TransactWriteItems call, to roll
    back on failure: O(table size) per call, O(n^2) over a file, which would measure moto, not
    this code. The benchmark's transactions either succeed or fail every condition (replays), so
    nothing is ever half-applied and the snapshot can be skipped. Said aloud in the output.
    """
    import copy
    import types

    import moto.dynamodb.models as models

    original = models.DynamoDBBackend.transact_write_items
    shim = types.SimpleNamespace(deepcopy=lambda value: value, copy=copy.copy)

    def transact_write_items(self: Any, transact_items: Any) -> None:
        models.copy = shim
        try:
            return original(self, transact_items)
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


def drain_processing_queue(world: Any) -> None:
    """moto's SQS scans every stored message on each send (O(queue depth)); the processor is
    not running here, so the queue would grow to 1M messages. Empty moto's queue after each
    batch send, directly in its backend (no AWS call, nothing counted)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends
    from payments import aws

    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[world.queue_url.rsplit("/", 1)[1]]

    def purge(**_: Any) -> None:
        queue._messages.clear()

    aws.client("sqs").meta.events.register("after-call.sqs.SendMessageBatch", purge)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class CsvStream:
    """A file-like object generating N fixed-width rows on the fly (never whole in memory)."""

    def __init__(self, rows: int, first: int = 0) -> None:
        self.rows, self.next_row, self.pending = first + rows, first, HEADER.encode()

    def read(self, size: int = -1) -> bytes:
        size = 1 << 20 if size is None or size < 0 else size
        while len(self.pending) < size and self.next_row < self.rows:
            block = min(self.rows - self.next_row, 20_000)
            self.pending += "".join(
                ROW.format(i, i % 999_999 + 1, i % 100)
                for i in range(self.next_row, self.next_row + block)
            ).encode()
            self.next_row += block
        out, self.pending = self.pending[:size], self.pending[size:]
        return out


def row_bytes() -> int:
    return len(ROW.format(0, 1, 0))


def batches(chunk_rows: int, workers: int | None = None):
    from payments.batch import WRITE_WORKERS, Batches
    from payments.config import load

    cfg = load()
    return Batches(
        type(cfg)(**{**cfg.__dict__, "batch_chunk_rows": chunk_rows}),
        workers=workers or WRITE_WORKERS,
    )


def counter_for_clients() -> CallCounter:
    from payments import aws

    return CallCounter().attach(*(aws.client(s) for s in ("dynamodb", "sqs", "s3", "sns")))


def upload(world: Any, batch_id: str, rows: int, first: int = 0) -> str:
    key = f"incoming/{batch_id}.csv"
    world.s3.upload_fileobj(CsvStream(rows, first), world.bucket, key)
    return key


def _stub_writes(clients: list[Any]) -> list[tuple[Any, str, Any]]:
    """Answer TransactWriteItems and SendMessageBatch without moto: a success, as AWS would.

    The request is still built and serialized by botocore (that happens before ``before-call``);
    only the network, signing and moto are left out.
    """
    import threading

    last = threading.local()

    def remember(params: dict[str, Any], **_: Any) -> None:
        last.params = params

    def answer(model: Any = None, **_: Any) -> Any:
        if model.name == "TransactWriteItems":
            return _Ok(), {}
        entries = last.params["Entries"]
        return _Ok(), {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}

    hooks = []
    for client in clients:
        service = client.meta.service_model.service_id.hyphenize()
        operation = "TransactWriteItems" if service == "dynamodb" else "SendMessageBatch"
        hooks += [
            (client, f"before-parameter-build.{service}.{operation}", remember),
            (client, f"before-call.{service}.{operation}", answer),
        ]
    return hooks


class _Ok:
    status_code = 200
    headers: dict[str, str] = {}  # noqa: RUF012 - never mutated
    content = b""
    text = ""


def bench_chunk(
    world: Any, rows: int, workers: int, *, first: int, latency: float = 0.0, stub: bool = False
) -> dict[str, Any]:
    """Wall and CPU time of one ``rows``-row chunk of new payments, with ``workers`` threads.

    ``latency`` seconds are slept before every AWS call (a network wait: it releases the GIL);
    ``stub`` answers the chunk's writes without moto (the client's own CPU cost).
    """
    from payments import aws

    batch_id = f"chunk-{first}"
    key = upload(world, batch_id, rows, first)
    tasks = batches(rows, workers)
    state = tasks.register(
        {"bucket": world.bucket, "key": key, "batch_id": batch_id, "version_id": "null"}
    )
    (chunk_input,) = chunk_inputs(state)
    clients = [aws.client(s) for s in ("dynamodb", "sqs", "s3")]
    counter = CallCounter()
    hooks: list[tuple[Any, str, Any]] = [(c, "before-call", counter) for c in clients]
    if latency:
        hooks += [(c, "before-call", lambda **_: time.sleep(latency)) for c in clients]
    if stub:
        hooks += _stub_writes(clients[:2])
    for client, event, hook in hooks:
        client.meta.events.register(event, hook)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        out = tasks.process_chunk(chunk_input)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        for client, event, hook in hooks:
            client.meta.events.unregister(event, hook)
    assert out["counts"]["accepted"] == rows, out
    return {"wall": wall, "cpu": cpu, "calls": dict(counter.calls)}


def report_chunk_times(world: Any, rows: int) -> None:
    from payments.batch import WRITE_WORKERS

    print(f"== Batch chunk wall time, {rows:,} new rows, 1 vs {WRITE_WORKERS} workers")
    first = 10**9  # payment ids no other section uses
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for label, kwargs in (
        ("moto in-process", {}),
        (f"moto + {CALL_LATENCY_S * 1000:.0f} ms sleep per AWS call", {"latency": CALL_LATENCY_S}),
        ("writes stubbed (client CPU)", {"stub": True}),
    ):
        runs[label] = {}
        for workers in (1, WRITE_WORKERS):
            runs[label][workers] = bench_chunk(world, rows, workers, first=first, **kwargs)
            first += rows
        one, many = runs[label][1], runs[label][WRITE_WORKERS]
        print(
            f"  {label:38} 1 worker {one['wall']:6.2f} s (CPU {one['cpu']:5.2f} s)   "
            f"{WRITE_WORKERS} workers {many['wall']:6.2f} s (CPU {many['cpu']:5.2f} s)"
        )
    calls = runs["moto in-process"][WRITE_WORKERS]["calls"]
    print(f"  AWS calls per {rows:,}-row chunk: {calls}")
    # Scale to the deployed chunk size: write calls and CPU grow with the rows, the rest does not.
    scale = CHUNK_ROWS / rows
    writes = {k: math.ceil(v * scale) for k, v in calls.items() if k in _WRITE_CALLS}
    others = sum(v for k, v in calls.items() if k not in _WRITE_CALLS)
    sequential = (sum(writes.values()) + others) * CALL_LATENCY_S
    rounds = sum(math.ceil(n / WRITE_WORKERS) for n in writes.values()) + others
    waiting = rounds * CALL_LATENCY_S
    cpu = runs["writes stubbed (client CPU)"][WRITE_WORKERS]["cpu"] * scale / BATCH_TASKS_VCPU
    units = CHUNK_ROWS * WRITE_UNITS_PER_ROW
    scaled = "" if scale == 1 else f" (scaled from {rows:,} rows)"
    print(
        f"  AWS estimate per {CHUNK_ROWS:,}-row chunk{scaled}, {CALL_LATENCY_S * 1000:.0f} ms/call:"
    )
    print(
        f"    before, one call at a time: {sum(writes.values()) + others} calls "
        f"= {sequential:.1f} s"
    )
    print(f"    now, {WRITE_WORKERS} at a time: {rounds} rounds of calls = {waiting:.1f} s waiting")
    print(
        f"    client CPU (CSV, validation, request building; writes stubbed, {WRITE_WORKERS} "
        f"workers): {cpu * BATCH_TASKS_VCPU:.2f} s on this machine = ~{cpu:.1f} s on batch-tasks' "
        f"{BATCH_TASKS_VCPU:.2f} vCPU, assuming one core here ~ one Lambda vCPU"
    )
    print(
        f"    => {max(waiting, cpu):.1f}-{waiting + cpu:.1f} s (waits and CPU overlapping fully "
        "- not at all)"
    )
    print(
        f"    DynamoDB floor: {units:,} write units (>= {WRITE_UNITS_PER_ROW}/row) = "
        f"{units / NEW_TABLE_WRITE_UNITS:.1f} s on a new on-demand table "
        f"({NEW_TABLE_WRITE_UNITS:,}/s; throttled calls are retried), "
        f"{units / TABLE_QUOTA_WRITE_UNITS:.1f} s at the default table quota "
        f"({TABLE_QUOTA_WRITE_UNITS:,}/s)"
    )
    low, high = max(waiting, cpu), max(waiting + cpu, units / NEW_TABLE_WRITE_UNITS)
    report_file_estimate(low=low, high=high, busy=waiting + cpu, sequential_chunk=sequential)


def plan_seconds_per_row(rows: int = 100_000) -> float:
    """CPU seconds per row of Register's plan pass (split, validate, digest), no AWS calls."""
    from payments.batch import plan_chunks
    from payments.csv_reader import read_header

    header = read_header(CsvStream(0))
    stream = CsvStream(rows)
    stream.read(header.data_offset)  # as Register's ranged GET from the header's end
    started = time.process_time()
    planned = sum(
        c.rows
        for c in plan_chunks(
            stream,
            columns=header.columns,
            offset=header.data_offset,
            line=header.next_line,
            chunk_rows=CHUNK_ROWS,
        )
    )
    assert planned == rows, planned
    return (time.process_time() - started) / rows


def production_profile() -> Any:
    # Loaded by path: importing the ``lib`` package would load the CDKTF provider (seconds).
    spec = importlib.util.spec_from_file_location("settings", ROOT / "lib" / "settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["settings"] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module.PROFILES["production"]


def report_file_estimate(*, low: float, high: float, busy: float, sequential_chunk: float) -> None:
    """A 1M-row file on AWS: the old chunk loop (chunks one after another) vs the Map (the plan
    pass, then production's chunks ``MaxConcurrency`` at a time), each bounded below by what
    the payments and audit tables write per second."""
    rows = 1_000_000
    chunks = math.ceil(rows / CHUNK_ROWS)
    production = production_profile()
    width = production.batch_chunk_concurrency
    plan = plan_seconds_per_row() * rows / BATCH_TASKS_VCPU
    table_units = rows * WRITE_UNITS_PER_ROW // 2  # per table: payment or audit item, 2 units
    warm = table_units / production.batch_write_units
    cold = table_units / NEW_TABLE_WRITE_UNITS
    waves = math.ceil(chunks / width)
    print(f"== AWS estimate, {rows:,}-row file, {chunks} chunks of {CHUNK_ROWS:,} rows")
    print(
        f"  chunk loop (before): {chunks} x {low:.1f}-{high:.1f} s = "
        f"~{chunks * low / 60:.0f}-{chunks * high / 60:.0f} min (warm table - new table); "
        f"with one call at a time ~{chunks * sequential_chunk / 60:.0f} min"
    )
    print(
        f"  plan pass in Register: {plan:.0f} s on batch-tasks' {BATCH_TASKS_VCPU:.2f} vCPU "
        f"({plan / rows * 1e6 * BATCH_TASKS_VCPU:.1f} us/row here); digests of 1M distinct "
        "ids ~118 MB"
    )
    parallel_low = plan + max(waves * low, warm)
    parallel_high = plan + max(waves * busy, cold)
    print(
        f"  Map, {width} chunks at once (production): plan + {waves} waves x {low:.1f}-{busy:.1f} s"
        f", at least the tables' write time ({table_units:,} units per table: {warm:.0f} s at "
        f"the warm {production.batch_write_units:,}/s, {cold:.0f} s at a new table's "
        f"{NEW_TABLE_WRITE_UNITS:,}/s) = ~{parallel_low / 60:.1f}-{parallel_high / 60:.1f} min"
    )
    print("  plus Lambda invokes and state transitions; the processor's writes share the tables\n")


_WRITE_CALLS = ("dynamodb:TransactWriteItems", "sqs:SendMessageBatch")


def bench_calls_per_1000(world: Any) -> dict[str, Any]:
    key = upload(world, "calls", 1000)
    tasks = batches(CHUNK_ROWS)
    counter = counter_for_clients()
    started = time.perf_counter()
    state = tasks.register(
        {"bucket": world.bucket, "key": key, "batch_id": "calls", "version_id": "null"}
    )
    for chunk_input in chunk_inputs(state):
        tasks.process_chunk(chunk_input)
    tasks.finalize(state)
    elapsed = time.perf_counter() - started
    return {"calls": dict(sorted(counter.calls.items())), "seconds": elapsed}


def bench_memory(world: Any, rows: int, *, sample: int | None) -> dict[str, Any]:
    """Per-chunk peak of Python allocations (tracemalloc) and RSS while processing ``rows``."""
    batch_id = f"mem{rows}"
    key = upload(world, batch_id, rows)
    tasks = batches(CHUNK_ROWS)
    # Register plans the whole file (one pass): timed alone, then its memory under tracemalloc
    # (a second run of the same Register: a retry re-plans, the outcome is the same).
    event = {"bucket": world.bucket, "key": key, "batch_id": batch_id, "version_id": "null"}
    started, cpu = time.perf_counter(), time.process_time()
    state = tasks.register(event)
    plan = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    tracemalloc.start()
    tasks.register(event)
    plan["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    inputs = chunk_inputs(state)
    chunks = len(inputs)
    assert chunks == -(-rows // CHUNK_ROWS), chunks
    indices = list(range(chunks))
    if sample and chunks > sample:
        step = (chunks - 1) / (sample - 1)
        indices = sorted({round(i * step) for i in range(sample)})
    results = []
    tracemalloc.start()
    for index in indices:
        chunk_state = inputs[index]
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        out = tasks.process_chunk(chunk_state)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        results.append(
            {
                "chunk": index,
                "rows": out["counts"]["total_rows"],
                "seconds": seconds,
                "peak_mb": (peak - before) / 2**20,
                "rss_mb": rss_mb(),
            }
        )
    tracemalloc.stop()
    return {
        "rows": rows,
        "chunks": chunks,
        "sampled": len(indices),
        "per_chunk": results,
        "plan": plan,
    }


def bench_api(world: Any) -> dict[str, Any]:
    import importlib

    import handlers.api

    api = importlib.reload(handlers.api)
    ctx = LambdaContext()
    api.handler(api_event("GET", "/health"), ctx)  # create clients first
    api.handler(
        api_event(
            "POST",
            "/payments",
            body={"amount": "1", "currency": "USD"},
            headers={"Idempotency-Key": "warm"},
        ),
        ctx,
    )
    counter = counter_for_clients()
    out: dict[str, Any] = {}
    cases = {
        "POST /payments (new)": (
            "POST",
            "/payments",
            {"payment_id": "b1", "amount": "5", "currency": "USD"},
            None,
        ),
        "POST /payments (identical replay)": (
            "POST",
            "/payments",
            {"payment_id": "b1", "amount": "5", "currency": "USD"},
            None,
        ),
        "POST /payments (Idempotency-Key, first)": (
            "POST",
            "/payments",
            {"amount": "5", "currency": "USD"},
            {"Idempotency-Key": "bench-1"},
        ),
        "POST /payments (Idempotency-Key, replay)": (
            "POST",
            "/payments",
            {"amount": "5", "currency": "USD"},
            {"Idempotency-Key": "bench-1"},
        ),
        "GET /payments/{id}": ("GET", "/payments/b1", None, None),
        "GET /batches/{id}": ("GET", "/batches/calls", None, None),
    }
    for label, (method, path, body, headers) in cases.items():
        counter.reset()
        response = api.handler(api_event(method, path, body=body, headers=headers), ctx)
        out[label] = {
            "status": response["statusCode"],
            "calls": dict(counter.calls),
            "total": counter.total(),
        }
    return out | bench_caller_identity(api, ctx, counter)


def bench_caller_identity(api: Any, ctx: Any, counter: CallCounter) -> dict[str, Any]:
    """What knowing the caller costs a request: its client looked up (cold: the API function's
    cache is empty or older than CLIENT_CACHE_SECONDS) or found in the cache (warm)."""
    from payments.config import load
    from payments.repository import Repository

    repo = Repository(load())
    client = {
        "client_id": "bench",
        "kind": "api",
        "status": "ACTIVE",
        "key_id": "benchkey01",
        "version": 1,
    }
    repo.transact(repo.client_ops(client))
    check = {"amount": "1", "currency": "USD"}
    out: dict[str, Any] = {}
    for who, key_id in (("default client", None), ("make-client client", "benchkey01")):
        extra = {"key_id": key_id} if key_id else {}
        for state in ("cold", "warm"):
            if state == "cold":
                api._forget_clients()
            counter.reset()
            started = time.perf_counter()
            response = api.handler(api_event("POST", "/validate", body=check, **extra), ctx)
            elapsed = (time.perf_counter() - started) * 1000
            out[f"identify caller: {who}, {state}"] = {
                "status": response["statusCode"],
                "calls": dict(counter.calls),
                "total": counter.total(),
                "ms": elapsed,
            }
    return out


def bench_cold_start(repeats: int) -> dict[str, float]:
    modules = [
        "boto3",
        "handlers.api",
        "handlers.processor",
        "handlers.batch_trigger",
        "handlers.batch_tasks",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lambda")}
    code = "import time,sys;t=time.perf_counter();import {m};print(time.perf_counter()-t)"
    times: dict[str, list[float]] = {module: [] for module in modules}
    # Rounds interleave the modules, so a change in machine load hits the baseline and the
    # handlers alike instead of skewing their ratio.
    for _ in range(repeats):
        for module in modules:
            run = subprocess.run(
                [sys.executable, "-c", code.format(m=module)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            times[module].append(float(run.stdout))
    return {module: statistics.median(t) * 1000 for module, t in times.items()}


# -- the same chunk through the local cloud's endpoint -----------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def report_chunk_through_endpoint(rows: int) -> None:
    """One ``rows``-row chunk against ``python -m localcloud serve``: the local cloud's server
    with all its patches, in a process of its own, over HTTP, as the functions call it.

    In-process figures above leave out what the local cloud adds (HTTP, moto's dispatch, the
    patches), so a regression in its data plane shows only here. The server is started on free
    ports with a state directory of its own and stopped afterwards; the chunk runs in a child
    process of this script (``--endpoint-chunk``) whose SDK calls go to the server.
    """
    import shutil
    import tempfile
    import urllib.request

    port, gateway_port = _free_port(), _free_port()
    state_dir = tempfile.mkdtemp(prefix="bench-localcloud-")
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOCALCLOUD_STATE_DIR": state_dir}
    server = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--port", str(port),
         "--gateway-port", str(gateway_port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the local cloud's server did not start") from None
                time.sleep(0.2)
        print(f"== Batch chunk through the local cloud's endpoint, {rows:,} new rows")
        child = subprocess.run(
            [sys.executable, __file__, "--endpoint-chunk", str(rows), "--endpoint", endpoint],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        print(child.stdout, end="")
        if child.returncode:
            print(child.stderr[-2000:])
        with open(f"/proc/{server.pid}/status") as status:
            rss = next(line for line in status if line.startswith("VmHWM:")).split()[1]
        print(f"  server peak RSS: {int(rss) // 1024} MB\n")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(state_dir, ignore_errors=True)


def endpoint_chunk(rows: int, endpoint: str) -> None:
    """The child of ``report_chunk_through_endpoint``: world, upload and chunk over HTTP."""
    from payments.batch import WRITE_WORKERS

    os.environ["AWS_ENDPOINT_URL"] = endpoint
    from handlers import common

    common.reset()
    world = build_world("bench-endpoint", chunk_rows=CHUNK_ROWS)
    first = 2 * 10**9  # payment ids of their own
    result = bench_chunk(world, rows, WRITE_WORKERS, first=first)
    again = bench_chunk(world, rows, WRITE_WORKERS, first=first + rows)
    calls = sum(result["calls"].values())
    for label, run in (("first chunk", result), ("second chunk", again)):
        print(
            f"  {label}: {run['wall']:.2f} s wall, {rows / run['wall']:,.0f} rows/s, "
            f"client CPU {run['cpu']:.2f} s, {calls} AWS calls ({WRITE_WORKERS} workers)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    parser.add_argument("--sample-chunks", type=int, default=5)
    parser.add_argument("--cold-repeats", type=int, default=9)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="calls and chunk wall time only (1,000-row chunk); no memory, API, cold start",
    )
    parser.add_argument(
        "--endpoint-rows",
        type=int,
        default=CHUNK_ROWS,
        help="rows of the chunk measured through the local cloud's endpoint (0: skip)",
    )
    parser.add_argument("--endpoint-chunk", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.endpoint_chunk:
        endpoint_chunk(args.endpoint_chunk, args.endpoint)
        return

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    print("all AWS calls go to moto in-process; counts come from botocore before-call hooks")
    print("moto's per-transaction table snapshot is skipped and the processing queue is emptied")
    print("after each send: moto costs O(table size) and O(queue depth) there (see functions)")
    print("moto runs one transaction at a time (its rollback is not safe across threads)")
    print("tracemalloc slows the memory runs ~4x; peaks include items moto keeps for the chunk\n")
    skip_moto_transaction_snapshots()
    with mock_aws(), serialized_moto_transactions():
        from handlers import common

        common.reset()
        world = build_world("bench", chunk_rows=CHUNK_ROWS)
        drain_processing_queue(world)

        calls = bench_calls_per_1000(world)
        print("== Batch: AWS calls per 1,000 valid rows (register + 1 chunk + finalize)")
        for name, count in calls["calls"].items():
            print(f"  {name:38} {count:6}")
        sqs_sends = sum(v for k, v in calls["calls"].items() if k.startswith("sqs:Send"))
        print(f"  SQS send calls per 1,000 rows: {sqs_sends} (target <= 150)")
        print(f"  throughput in-process against moto: {1000 / calls['seconds']:.0f} rows/s\n")

        report_chunk_times(world, 1000 if args.quick else CHUNK_ROWS)
        if args.quick:
            if args.endpoint_rows:
                report_chunk_through_endpoint(min(args.endpoint_rows, 1000))
            return
        small = bench_memory(world, 10_000, sample=None)
        large = bench_memory(world, args.large_rows, sample=args.sample_chunks)
        print(f"== Batch memory, chunk = {CHUNK_ROWS} rows (tracemalloc peak per chunk; RSS)")
        for result in (small, large):
            sampled = (
                ""
                if result["sampled"] == result["chunks"]
                else (f" - SAMPLED {result['sampled']} of {result['chunks']} chunks (start..end)")
            )
            print(f"  {result['rows']:>9,} rows, {result['chunks']} chunks{sampled}")
            for c in result["per_chunk"]:
                print(
                    f"    chunk {c['chunk']:>4}: {c['rows']} rows {c['seconds']:6.2f} s  "
                    f"peak {c['peak_mb']:6.2f} MB  RSS {c['rss_mb']:7.1f} MB"
                )
        peak_small = max(c["peak_mb"] for c in small["per_chunk"])
        peak_large = max(c["peak_mb"] for c in large["per_chunk"])
        print(
            f"  peak per chunk: 10k {peak_small:.2f} MB vs {args.large_rows:,} "
            f"{peak_large:.2f} MB -> difference {peak_large - peak_small:+.2f} MB "
            f"(target: flat within 20 MB)"
        )
        longest = max(c["seconds"] for c in large["per_chunk"])
        mean = statistics.mean(c["seconds"] for c in large["per_chunk"])
        print(
            f"  longest chunk ({CHUNK_ROWS} rows) against moto: {longest:.2f} s of a "
            f"{LAMBDA_TIMEOUT_S} s Lambda timeout ({longest / LAMBDA_TIMEOUT_S:.1%})"
        )
        print(
            f"  whole {args.large_rows:,}-row file: {large['chunks']} chunks x {mean:.2f} s "
            f"= ~{large['chunks'] * mean / 60:.0f} min against moto (extrapolated from the "
            f"sampled chunks)\n"
        )

        print("== API: AWS calls per request (no Idempotency-Key unless stated)")
        for label, result in bench_api(world).items():
            timing = f"  {result['ms']:.1f} ms against moto" if "ms" in result else ""
            print(
                f"  {label:42} HTTP {result['status']}  {result['total']} call(s) "
                f"{result['calls']}{timing}"
            )
        print(
            "  target: POST /payments <= 3 calls; the caller's client at most one cached lookup "
            "(one GetItem per key every 30 s per function environment)\n"
        )

    if args.endpoint_rows:
        report_chunk_through_endpoint(args.endpoint_rows)
    print(f"== Cold start: import in a fresh interpreter (median of {args.cold_repeats})")
    cold = bench_cold_start(args.cold_repeats)
    base = cold["boto3"]
    for module, ms in cold.items():
        print(f"  {module:24} {ms:7.1f} ms  {ms / base:4.2f}x bare boto3 (target <= 1.5x)")
    print(
        f"\npeak RSS of this benchmark process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
