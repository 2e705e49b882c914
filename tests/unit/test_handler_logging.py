"""No handler can be switched into logging its events (request bodies, CSV rows, payer fields).

Powertools' ``inject_lambda_context`` logs the whole event when POWERTOOLS_LOGGER_LOG_EVENT is
true, unless the decorator says ``log_event=False``: one environment variable set while
debugging would put every payer's fields into CloudWatch. The e2e suite's log scan
(tests/e2e/test_log_scan.py) proves what the handlers do log; this proves the switch is off.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from localcloud.config import REPO_ROOT

HANDLERS = sorted((REPO_ROOT / "lambda" / "handlers").glob("*.py"))


def _decorators(path: Path) -> list[ast.expr]:
    tree = ast.parse(path.read_text())
    return [
        decorator
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for decorator in node.decorator_list
        if "inject_lambda_context" in ast.unparse(decorator)
    ]


def test_every_handler_with_an_entry_point_injects_the_lambda_context() -> None:
    entry_points = [p.stem for p in HANDLERS if "def handler(" in p.read_text()]
    assert entry_points
    assert [p.stem for p in HANDLERS if _decorators(p)] == entry_points


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.stem)
def test_event_logging_is_off_whatever_the_environment_says(path: Path) -> None:
    for decorator in _decorators(path):
        assert isinstance(decorator, ast.Call), f"{path.stem}: {ast.unparse(decorator)}"
        keywords = {k.arg: k.value for k in decorator.keywords}
        assert "log_event" in keywords, f"{path.stem}: {ast.unparse(decorator)}"
        value = keywords["log_event"]
        assert isinstance(value, ast.Constant) and value.value is False
