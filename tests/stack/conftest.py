"""Fixtures for the stack tests: the SAM template and its offline CloudFormation transform."""

from typing import Any

import pytest

from tests.support.sam import load_template, transform


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def cfn() -> dict[str, Any]:
    """The transformed template with default parameters."""
    return transform()


@pytest.fixture(scope="session")
def resources(cfn: dict[str, Any]) -> dict[str, Any]:
    return cfn["Resources"]
