"""The lazy provider load (lib/aws_provider.py) is fast because it skips work, and faithful."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.runtime import BUILD_DIR, LAYER_ZIP

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "cdktf_cdktf_provider_aws"


def test_lazy_load_imports_only_the_submodules_the_stack_uses() -> None:
    code = (
        f"import sys, lib.stack\nprint(sum(1 for m in sys.modules if m.startswith('{PROVIDER}.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # The package has 2,135 submodules; the stack needs about a hundred resource types.
    assert int(out.stdout.strip()) < 300


@pytest.mark.slow
@pytest.mark.xdist_group("synth")
def test_synth_is_byte_identical_to_the_eager_provider_import(tmp_path: Path) -> None:
    if not (BUILD_DIR / LAYER_ZIP).exists():
        pytest.skip("main.py needs the Lambda layer: run `make layer` (make test does)")
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "ENVIRONMENT_SUFFIX": "same",
        "KMS_ADMIN_ROLE_ARN": "arn:aws:iam::123456789012:role/payments-key-admins",
        "ALARM_SUBSCRIPTIONS": "email:oncall@example.com",
        "TERRAFORM_STATE_BUCKET": "state-bucket",
        "TERRAFORM_STATE_BUCKET_REGION": "us-east-1",
    }
    runner = "import runpy; runpy.run_path('main.py', run_name='__main__')"
    for name, prelude in (("lazy", ""), ("eager", f"import {PROVIDER}; ")):
        subprocess.run(
            [sys.executable, "-c", prelude + runner],
            cwd=ROOT,
            env={**env, "CDKTF_OUTDIR": str(tmp_path / name)},
            check=True,
            capture_output=True,
        )
    stack = Path("stacks", "payments", "cdk.tf.json")
    assert filecmp.cmp(tmp_path / "lazy" / stack, tmp_path / "eager" / stack, shallow=False)
