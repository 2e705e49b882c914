"""KMS: the key rotation period as sent."""

from __future__ import annotations

import json
from typing import Any


def rotation_period() -> None:
    """Keep ``RotationPeriodInDays``; moto drops it and the next plan resets it to 365."""
    from moto.kms.responses import KmsResponse

    original_enable = KmsResponse.enable_key_rotation
    original_status = KmsResponse.get_key_rotation_status

    def key(self: KmsResponse) -> Any:
        backend = self.kms_backend
        return backend.keys[backend.get_key_id(self._get_param("KeyId"))]

    def enable_key_rotation(self: KmsResponse) -> str:
        result = original_enable(self)
        # 365 days is AWS's default period when the request names none.
        key(self).rotation_period_in_days = int(self._get_param("RotationPeriodInDays") or 365)
        return result

    def get_key_rotation_status(self: KmsResponse) -> str:
        status = json.loads(original_status(self))
        cmk = key(self)
        status["KeyId"] = cmk.id
        if status.get("KeyRotationEnabled"):
            status["RotationPeriodInDays"] = getattr(cmk, "rotation_period_in_days", 365)
        return json.dumps(status)

    KmsResponse.enable_key_rotation = enable_key_rotation
    KmsResponse.get_key_rotation_status = get_key_rotation_status
