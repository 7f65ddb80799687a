"""Async destinations and DLQs (destinations.py): a function target is invoked asynchronously; an unknown one fails."""

from __future__ import annotations

import pytest

from lambdalab.awslambda.service.destinations import Destinations


async def test_a_function_destination_is_an_asynchronous_invoke() -> None:
    invoked: list[tuple[str, bytes]] = []

    async def invoke_async(arn: str, body: bytes) -> None:
        invoked.append((arn, body))

    target = "arn:aws:lambda:us-east-1:123456789012:function:audit"
    await Destinations("http://127.0.0.1:1", invoke_async).send(target, b'{"x": 1}', {})
    assert invoked == [(target, b'{"x": 1}')]


async def test_an_unsupported_destination_is_an_error_not_a_silent_drop() -> None:
    async def invoke_async(arn: str, body: bytes) -> None:
        raise AssertionError("not a function")

    with pytest.raises(ValueError, match="unsupported destination"):
        await Destinations("http://127.0.0.1:1", invoke_async).send("arn:aws:s3:::bucket:x:y", b"{}", {})
