"""What every handler shares: the logger, the configuration and per-container caches."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from payments import aws, config

logger = Logger()


@cache
def settings() -> config.Config:
    """The validated configuration, read on first use (a bad variable fails that request)."""
    return config.load()


def business_metrics(function: str) -> Any:
    """Powertools Metrics (embedded metric format) for one function. Environments share the
    account's namespace (POWERTOOLS_METRICS_NAMESPACE, set by the stack), so the function's name
    is a dimension that tells them apart."""
    import os

    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Payments")
    metrics.set_default_dimensions(
        FunctionName=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", function)
    )
    return metrics


def reset() -> None:
    """Drop every per-container cache (tests build a fresh moto world per test)."""
    settings.cache_clear()
    aws.reset()
    for hook in _reset_hooks:
        hook()


_reset_hooks: list[Any] = []


def on_reset(hook: Any) -> Any:
    _reset_hooks.append(hook)
    return hook
