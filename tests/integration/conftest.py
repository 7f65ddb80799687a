"""Session fixtures shared by integration test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cloud import local_cloud
from tests.support.sources import STACK, TEMPLATE, TIME_SCALE, Sources


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    """The event-source stack on a local cloud, shared by the test_<source>_local.py files."""
    ledger = tmp_path_factory.mktemp("sources-ledger")
    tmp = tmp_path_factory.mktemp("sources-cloud")
    extra = ["--stack-name", STACK, "--time-scale", TIME_SCALE, "--parameter-overrides", f"LedgerDir={ledger}"]
    with local_cloud(TEMPLATE, tmp, extra=extra) as running:
        yield Sources(running, ledger, running.outputs(STACK))
