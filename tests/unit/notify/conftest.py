"""Fixtures of the notification unit tests: an in-process destination (no sockets)."""

from __future__ import annotations

import pytest

from tests.unit.notify.inbox import Inbox


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()
