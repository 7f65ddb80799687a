"""Async destinations and DLQs (destinations.py): an unknown target fails (a function target is the service's own
asynchronous invoke: test_service.py)."""

from __future__ import annotations

import pytest

from lambdalab.awslambda.service.destinations import Destinations


@pytest.mark.parametrize("target", ["arn:aws:s3:::bucket:x:y", "arn:aws:lambda:us-east-1:123456789012:function:f"])
async def test_an_unsupported_destination_is_an_error_not_a_silent_drop(target: str) -> None:
    with pytest.raises(ValueError, match="unsupported destination"):
        await Destinations("http://127.0.0.1:1").send(target, b"{}", {})
