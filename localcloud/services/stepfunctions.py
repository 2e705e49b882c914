"""Step Functions: executions that really run, and the calls the provider makes while planning."""

from __future__ import annotations

import importlib
import json
import uuid
from pathlib import Path
from typing import Any

from moto.core.config import default_user_config

from localcloud.config import HOST, LOCAL_CREDENTIALS


def enable_execution(port: int) -> None:
    """Run executions (service integrations call this server) instead of returning stubs.

    The switch must be on before the first state machine exists: moto keeps executing and
    non-executing state machines in different backends. The interpreter's SDK clients call
    ``http://localhost:$MOTO_PORT``; they are pointed at 127.0.0.1 and this server's port, since
    ``localhost`` may resolve to ``::1`` where nothing listens.
    """
    default_user_config["stepfunctions"] = {"execute_state_machine": True}

    import boto3
    import moto.stepfunctions.parser as parser_package
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        return boto3.client(
            service_name=service,
            region_name=region,
            **LOCAL_CREDENTIALS,
            endpoint_url=f"http://{HOST}:{port}",
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
        )

    # The interpreter's modules import the helper by name, so each module's reference is replaced.
    root = Path(parser_package.__path__[0])
    for source in root.rglob("*.py"):
        if "boto_client_for" not in source.read_text(encoding="utf-8"):
            continue
        relative = source.relative_to(root).with_suffix("")
        name = ".".join((parser_package.__name__, *relative.parts))
        module = importlib.import_module(name)
        if hasattr(module, "boto_client_for"):
            module.boto_client_for = boto_client_for


def validate_and_versions() -> None:
    """Answer the two read-only calls the provider makes while planning a state machine.

    moto implements neither ``ValidateStateMachineDefinition`` nor ``ListStateMachineVersions``;
    the provider retries the resulting error until it times out, so ``plan`` seems to hang.
    """
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(self: StepFunctionResponse) -> ActionResult:
        definition = self._get_param("definition") or ""
        try:
            document = json.loads(definition)
            ok = isinstance(document, dict) and "States" in document
        except ValueError:
            ok = False
        if ok:
            return ActionResult({"result": "OK", "diagnostics": []})
        return ActionResult(
            {
                "result": "FAIL",
                "diagnostics": [
                    {
                        "severity": "ERROR",
                        "code": "SCHEMA_VALIDATION_FAILED",
                        "message": "The definition is not a JSON object with States",
                    }
                ],
            }
        )

    def list_state_machine_versions(self: StepFunctionResponse) -> ActionResult:
        arn = self._get_param("stateMachineArn")
        machine = self.stepfunction_backend.describe_state_machine(arn)
        versions = [
            {"stateMachineVersionArn": version.arn, "creationDate": version.creation_date}
            for version in sorted(
                getattr(machine, "versions", {}).values(), key=lambda v: -v.version
            )
        ]
        return ActionResult({"stateMachineVersions": versions})

    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition
    StepFunctionResponse.list_state_machine_versions = list_state_machine_versions


def execution_names() -> None:
    """Name an unnamed execution with a UUID, as AWS does; moto names every one ``None``."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kw: Any):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kw)

    StepFunctionsParserBackend.start_execution = start_execution
