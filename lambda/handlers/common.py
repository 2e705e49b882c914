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
