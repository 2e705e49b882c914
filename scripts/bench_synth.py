"""Synth speed: `python main.py` (production stack) against a bare provider import.

Runs the two commands alternately (so background load hits both alike), reports the median wall
time and the peak resident memory (VmHWM) of the Python process and of the Node process jsii
starts, and the ratio of the medians. Then checks that the fast path is faithful: the production
stack synthesized with the whole provider package imported first is byte-identical.

Usage: make bench-synth [RUNS=5]
"""

from __future__ import annotations

import filecmp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PRODUCTION = {
    "ENVIRONMENT": "production",
    "ENVIRONMENT_SUFFIX": "bench",
    "KMS_ADMIN_ROLE_ARN": "arn:aws:iam::123456789012:role/payments-key-admins",
    "ALARM_SUBSCRIPTIONS": "email:oncall@example.com",
    "TERRAFORM_STATE_BUCKET": "bench-state",
    "TERRAFORM_STATE_BUCKET_REGION": "us-east-1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}
SYNTH = [PYTHON, "main.py"]
BARE_IMPORT = [PYTHON, "-c", "import cdktf_cdktf_provider_aws"]
# The same app, but with the provider package imported the ordinary (eager) way first.
EAGER_SYNTH = [
    PYTHON,
    "-c",
    "import cdktf_cdktf_provider_aws, runpy; runpy.run_path('main.py', run_name='__main__')",
]


def _tree(root: int) -> list[int]:
    pids, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        pids.append(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        frontier.extend(int(c) for c in children)
    return pids


def _hwm_kib(pid: int) -> tuple[str, int] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmHWM" not in fields:
        return None
    return fields["Name"].strip(), int(fields["VmHWM"].split()[0])


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS of the python and of the node processes (MiB)."""
    peaks: dict[int, tuple[str, int]] = {}
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    while process.poll() is None:
        for pid in _tree(process.pid):
            sample = _hwm_kib(pid)
            if sample:
                peaks[pid] = sample
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()}")
    python = max((kib for name, kib in peaks.values() if name.startswith("python")), default=0)
    node = max((kib for name, kib in peaks.values() if name.startswith("node")), default=0)
    return wall, python // 1024, node // 1024


def main() -> None:
    runs = int(os.environ.get("RUNS", "5"))
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, **PRODUCTION, "CDKTF_OUTDIR": str(Path(scratch, "fast"))}
        results: dict[str, list[tuple[float, int, int]]] = {"synth": [], "bare": []}
        for index in range(runs):
            for name, command in (("synth", SYNTH), ("bare", BARE_IMPORT))[:: 1 - 2 * (index % 2)]:
                results[name].append(measure(command, env))
                wall, py, node = results[name][-1]
                print(
                    f"  run {index + 1} {name:5}: {wall:6.2f} s  python {py} MiB  node {node} MiB"
                )

        def median(name: str, column: int) -> float:
            return statistics.median(row[column] for row in results[name])

        print(f"\nmedians of {runs} alternating runs (production stack):")
        print(f"{'':34}{'wall s':>8}{'python MiB':>12}{'node MiB':>10}")
        labels = {
            "synth": "python main.py (lazy provider)",
            "bare": "import cdktf_cdktf_provider_aws",
        }
        for name, label in labels.items():
            print(f"{label:34}{median(name, 0):8.2f}{median(name, 1):12.0f}{median(name, 2):10.0f}")
        print(f"speed-up: {median('bare', 0) / median('synth', 0):.1f}x (target >= 3x)")

        eager_env = {**env, "CDKTF_OUTDIR": str(Path(scratch, "eager"))}
        subprocess.run(EAGER_SYNTH, cwd=ROOT, env=eager_env, check=True, capture_output=True)
        fast = Path(scratch, "fast", "stacks")
        eager = Path(scratch, "eager", "stacks")
        stacks = sorted(p.name for p in fast.iterdir())
        identical = all(
            filecmp.cmp(fast / s / "cdk.tf.json", eager / s / "cdk.tf.json", shallow=False)
            for s in stacks
        )
        print(f"cdk.tf.json byte-identical to the eager import: {'yes' if identical else 'NO'}")
        if not identical:
            sys.exit(1)


if __name__ == "__main__":
    main()
