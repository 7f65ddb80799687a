"""Every project of the event-source conformance corpus deploys into moto with each resource created and no
warning (running their steps.sh needs a local cloud: see tests/conformance/sources/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalab.deploy import ResourceStatus, deploy

from .conftest import ACCOUNT, REGION, MappingLambdaControl

CORPUS = Path(__file__).resolve().parents[2] / "conformance" / "sources"
PROJECTS = sorted(p.parent.name for p in CORPUS.glob("*/template.yaml"))


def test_the_corpus_has_a_project_per_source() -> None:
    assert PROJECTS == [
        "dynamodb-streams", "eventbridge", "http-api", "kinesis", "s3", "scheduler", "sns", "sqs-filter",
    ]  # fmt: skip
    for name in PROJECTS:
        assert (CORPUS / name / "steps.sh").stat().st_mode & 0o111, f"{name}/steps.sh is not executable"


@pytest.mark.parametrize("name", PROJECTS)
def test_each_project_deploys_cleanly(name: str, moto_endpoint: str) -> None:
    stack = deploy(
        CORPUS / name / "template.yaml",
        lambda_control=MappingLambdaControl(),
        endpoint_url=moto_endpoint,
        region=REGION,
        account_id=ACCOUNT,
        stack_name=f"conformance-{name}",
    )
    assert stack.warnings == []
    assert {r.status for r in stack.resources.values()} == {ResourceStatus.CREATE_COMPLETE}
    assert "ObservedQueueUrl" in stack.outputs
