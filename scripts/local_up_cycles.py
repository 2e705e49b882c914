"""``make local-up`` / ``local-down`` N times in a row: the local cloud must come up every time.

Each cycle runs ``python -m localcloud up`` (the server, the account stack, the environment, the API
answering) and then ``down``, with the ports and state directory of the environment
(``LOCALCLOUD_PORT``, ``LOCALCLOUD_GATEWAY_PORT``, ``LOCALCLOUD_STATE_DIR``). It prints each
cycle's ``up`` time and how many requests the server answered as retries of an earlier attempt
(``localcloud.services.core``: a write that took effect is never carried out twice), stops at the
first failure with the tail of that cycle's output and exit code 1, and ends with the minimum,
median and maximum ``up`` times. Each cycle's full output is kept in ``--logs``.

    python scripts/local_up_cycles.py            # 20 cycles
    python scripts/local_up_cycles.py -n 5 --logs build/cycles
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localcloud.config import LocalCloudConfig, LocalCloudError  # noqa: E402

# What localcloud.services.core logs when it answers a retry with the first attempt's answer.
REPLAY_MARK = "answered with its first attempt's"
# A cycle that takes longer than this has hung (a fresh `up` takes about 2.5 minutes).
UP_TIMEOUT_SECONDS = 15 * 60


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not a positive number of cycles")
    return value


def _localcloud(command: str, log: Path, timeout: float) -> int:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ python -m localcloud {command}\n")
        out.flush()
        try:
            return subprocess.run(
                [sys.executable, "-m", "localcloud", command],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"timed out after {timeout:.0f} s\n")
            return 124


def _replays(config: LocalCloudConfig) -> list[str]:
    try:
        lines = config.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if REPLAY_MARK in line]


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cycles", type=_positive, default=20, help="default 20")
    parser.add_argument(
        "--logs",
        type=Path,
        default=ROOT / "build" / "local-up-cycles",
        help="directory for each cycle's output (default build/local-up-cycles)",
    )
    args = parser.parse_args(argv)
    try:
        config = LocalCloudConfig.from_env()
    except LocalCloudError as error:
        print(f"local_up_cycles: {error}", file=sys.stderr)
        return 2
    args.logs.mkdir(parents=True, exist_ok=True)
    if _localcloud("status", args.logs / "before.log", 60) == 0:
        print(f"a local cloud is already up at {config.endpoint_url}; `make local-down` first")
        return 2

    times: list[float] = []
    for cycle in range(1, args.cycles + 1):
        log = args.logs / f"cycle-{cycle:02d}.log"
        log.unlink(missing_ok=True)
        started = time.monotonic()
        code = _localcloud("up", log, UP_TIMEOUT_SECONDS)
        elapsed = time.monotonic() - started
        replays = _replays(config)
        _localcloud("down", log, 120)
        if code != 0:
            print(f"cycle {cycle}/{args.cycles}: up FAILED (exit {code}) after {elapsed:.0f} s")
            print(_tail(log))
            return 1
        times.append(elapsed)
        note = f"; {len(replays)} retried request(s) answered once" if replays else ""
        print(f"cycle {cycle:2d}/{args.cycles}: up in {elapsed:5.1f} s{note}", flush=True)
        for line in replays:
            print(f"    {line}")
    print(
        f"{len(times)} cycles, none failed: up min {min(times):.1f} s, "
        f"median {statistics.median(times):.1f} s, max {max(times):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
