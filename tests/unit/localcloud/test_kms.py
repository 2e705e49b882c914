"""KMS on the patched moto (``localcloud/services/kms.py``): the rotation period reads back as
sent."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("localcloud-kms")


class TestKms:
    def test_rotation_period_reads_back_as_sent_and_defaults_to_365_days(self, cloud):
        kms = cloud.client("kms")
        custom = kms.create_key()["KeyMetadata"]["KeyId"]
        default = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=custom, RotationPeriodInDays=90)
        kms.enable_key_rotation(KeyId=default)
        assert kms.get_key_rotation_status(KeyId=custom)["RotationPeriodInDays"] == 90
        assert kms.get_key_rotation_status(KeyId=default)["RotationPeriodInDays"] == 365
