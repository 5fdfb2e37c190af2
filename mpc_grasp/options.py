"""Keyword options to frozen config dataclasses: ``fn(data, config=None, **options)`` in one line."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["config_from_options"]

ConfigT = TypeVar("ConfigT")


def config_from_options(config_class: type[ConfigT], config: ConfigT | None, options: dict[str, Any]) -> ConfigT:
    """``config`` (default ``config_class()``) with the field values in ``options`` replaced.

    Raises ``TypeError`` for a ``config`` of another type or an option that is not a field (naming the
    valid ones); the config's ``__post_init__`` validates the values."""
    if config is not None and not isinstance(config, config_class):
        raise TypeError(f"config must be a {config_class.__name__}, got {type(config).__name__}")
    valid = {item.name for item in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {config_class.__name__}; valid: {sorted(valid)}")
    if config is None:
        return config_class(**options)
    return dataclasses.replace(config, **options) if options else config  # type: ignore[type-var]
