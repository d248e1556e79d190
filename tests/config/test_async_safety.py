"""Django's async-safety guard is on outside the browser tests: tests/browser switches it off for its own
package only (Playwright's sync API runs an event loop in the test thread), and that must not leak. This file
sorts after tests/browser, so in a whole-suite run it also catches a leak that outlives the browser tests."""

import asyncio
import os

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection


def test_the_async_unsafe_switch_is_not_set_outside_the_browser_tests():
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ


def test_no_event_loop_is_left_running_in_the_test_thread():
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()


def test_the_orm_refuses_a_synchronous_call_from_async_code():
    async def synchronous_orm_call():
        connection.cursor()

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(synchronous_orm_call())
