"""``python -m localcloud serve``: the long-running local-cloud process.

One process holds moto's threaded server (the AWS endpoint), the patches that bridge moto's gaps,
the Lambda worker pools, the SQS and DynamoDB Streams pollers, the scheduler and the REST gateway.
Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from localcloud.config import HOST, LocalCloudConfig

log = logging.getLogger("localcloud")


def serve(config: LocalCloudConfig) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Quiet werkzeug's one line per request; the SDK chatter of a deploy drowns everything else.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto reads MOTO_PORT for the URLs it hands out (queue URLs, callbacks).
    os.environ["MOTO_PORT"] = str(config.port)
    os.environ.setdefault("AWS_DEFAULT_REGION", config.region)

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from localcloud import patches
    from localcloud.gateway import Gateway
    from localcloud.services.dynamodb_streams.poller import StreamPoller
    from localcloud.services.lambda_.functions import LogExport
    from localcloud.services.lambda_.runner import LambdaRunner
    from localcloud.services.scheduler import Scheduler
    from localcloud.services.sqs.poller import SqsPoller

    runner = LambdaRunner(
        work_dir=Path(config.state_dir) / "lambda", endpoint_url=config.endpoint_url
    )
    poller = SqsPoller()
    streams = StreamPoller()
    patches.apply(
        runner=runner,
        port=config.port,
        on_sqs_message=poller.wake,
        on_stream_record=streams.wake,
        log_export=LogExport(config.function_logs_file),
    )

    moto = ThreadedMotoServer(ip_address=HOST, port=config.port, verbose=False)
    moto.start()
    poller.start()
    streams.start()
    scheduler = Scheduler(endpoint_url=config.endpoint_url, scale=config.schedule_scale)
    scheduler.start()
    gateway = Gateway(
        host=HOST,
        port=config.gateway_port,
        endpoint_url=config.endpoint_url,
        region=config.region,
    )
    gateway.start()
    log.info(
        "local cloud ready: AWS endpoint %s, REST gateway %s%s",
        config.endpoint_url,
        config.gateway_url,
        f", rate schedules x{config.schedule_scale:g}" if config.schedule_scale != 1 else "",
    )

    stopped = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    scheduler.stop()
    poller.stop()
    streams.stop()
    gateway.stop()
    runner.shutdown()
    moto.stop()
    log.info("local cloud stopped")
