"""Secrets the CLI reads from the environment and hands to library functions as parameters."""

from __future__ import annotations

import os

from logmap.mapping.loader import key_variable
from logmap.mapping.model import Mapping


def anonymous_key_from_environment(mapping: Mapping) -> str | None:
    """The run's hash key (anonymous id, hashed user id) from the variable the mapping names (``key: env:NAME``),
    or None."""
    name = key_variable(mapping)
    return (os.environ.get(name) or None) if name else None
