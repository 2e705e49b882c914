"""What every batch task works with: the configuration, the repository, S3 and SQS clients, the
write threads of a chunk, and ranged reads of the uploaded file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from payments import aws, csv_reader
from payments.config import Config
from payments.errors import InvalidBatchFileError
from payments.repository import Repository

# Threads per chunk for the transactions and the SQS sends: one pooled connection each (see aws).
# More threads buy little: at 16 x 50 items x 2 write units per ~25 ms transaction a chunk can ask
# for more than a new on-demand table serves (4,000 writes/s, doubling as it adapts), and
# throttled transactions are retried (SDK, then ``aws.backoff`` here, then Step Functions).
WRITE_WORKERS = aws.MAX_POOL_CONNECTIONS
HEADER_PROBE_BYTES = 1024 * 1024
_T = TypeVar("_T")
_R = TypeVar("_R")


class BatchContext:
    def __init__(
        self,
        config: Config,
        *,
        repo: Repository | None = None,
        s3: Any = None,
        sqs: Any = None,
        workers: int = WRITE_WORKERS,
    ) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        self._s3 = s3
        self._sqs = sqs
        self.workers = max(1, workers)

    @property
    def s3(self) -> Any:
        return self._s3 or aws.client("s3")

    @property
    def sqs(self) -> Any:
        return self._sqs or aws.client("sqs")

    def in_parallel(self, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``work`` over ``items`` on up to ``self.workers`` threads; results in ``items`` order.

        A failure is raised (the first in ``items`` order) only once no worker is running any
        more: the retried chunk must not race writes or sends left over from this attempt (the
        Lambda runtime would freeze and thaw such threads into the next invocation).
        """
        if self.workers == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(items)), thread_name_prefix="chunk"
        ) as pool:
            futures = [pool.submit(work, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()  # not started yet; the pool waits for the running ones
                raise

    def header(self, state: dict[str, Any]) -> csv_reader.Header:
        """The header of the run's file version (``InvalidBatchFileError`` when it has none)."""
        return csv_reader.read_header(
            self.open(state["bucket"], state["key"], state["version_id"], 0, HEADER_PROBE_BYTES - 1)
        )

    def open(
        self, bucket: str, key: str, version_id: str | None, start: int, end: int | None
    ) -> Any:
        """A streaming body of bytes ``[start, end]`` of the object version (to its end when
        ``end`` is None); empty past the end of the file."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id and version_id != "null":
            kwargs["VersionId"] = version_id
        kwargs["Range"] = f"bytes={start}-" + ("" if end is None else str(end))
        try:
            return self.s3.get_object(**kwargs)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidRange":
                # Reading from the very end of the file: nothing left (or an empty file).
                return _Empty()
            if code in ("NoSuchKey", "NoSuchVersion", "404"):
                raise InvalidBatchFileError(f"s3://{bucket}/{key} no longer exists") from exc
            raise


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass
