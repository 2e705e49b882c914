"""The patched cloud of these tests leaves moto as it found it, for the tests that run after."""

from __future__ import annotations

import pytest
from localcloud_support import patched_cloud

from localcloud import patches

pytestmark = pytest.mark.xdist_group("localcloud-patches")


def test_patches_apply_inside_and_are_undone_after(tmp_path):
    from moto.awslambda.models import LambdaFunction
    from moto.core.config import default_user_config
    from moto.s3.models import FakeBucket
    from moto.sqs.models import Queue
    from moto.stepfunctions.responses import StepFunctionResponse

    def moto_as_it_ships():
        return (
            Queue.add_message,
            LambdaFunction.invoke,
            FakeBucket.get_permission,
            getattr(StepFunctionResponse, "list_state_machine_versions", None),
            default_user_config.get("stepfunctions"),
            patches._applied,
        )

    before = moto_as_it_ships()
    with patched_cloud(tmp_path):
        inside = moto_as_it_ships()
        assert all(a != b for a, b in zip(before, inside, strict=True))
    assert moto_as_it_ships() == before
