"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest

#: A throwaway anonymous-id key; tests that must not see it in any output compare against this value.
from support import TEST_KEY


@pytest.fixture
def anonymous_key(monkeypatch):
    """Set LOGMAP_KEY (the HMAC key of the shipped mappings) for one test; modules opt in with
    ``pytestmark = pytest.mark.usefixtures("anonymous_key")``."""
    monkeypatch.setenv("LOGMAP_KEY", TEST_KEY)
