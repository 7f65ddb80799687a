"""docs/LOCAL-DEPLOY.md's support table is what the code renders; every provisioner is in it, property by property."""

from __future__ import annotations

import pytest

from lambdalab.deploy import support
from lambdalab.deploy.resources import PROVISIONERS


def test_the_committed_table_is_current() -> None:
    committed = support.DOC.read_text(encoding="utf-8")
    assert support.replace_table(committed, support.render()) == committed, (
        "docs/LOCAL-DEPLOY.md's support table is stale: run `.venv/bin/python -m lambdalab.deploy.support --write`"
    )


def test_every_provisioned_type_has_a_row_with_its_properties() -> None:
    table = support.render()
    for kind in PROVISIONERS:
        assert f"| `{kind}` |" in table
    queue = support.describe("AWS::SQS::Queue")
    assert "RedrivePolicy" in queue.applied and "VisibilityTimeout" in queue.applied
    assert "QueueUrl" not in queue.applied + queue.not_applied  # read-only properties are no inputs
    function = support.describe("AWS::Lambda::Function")
    assert "ReservedConcurrentExecutions" in function.applied and "EphemeralStorage" in function.not_applied
    assert support.describe("AWS::Lambda::Permission").recorded  # recorded, not enforced


def test_a_provisioner_that_checks_its_own_properties_must_say_what_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a new type whose provisioner checks its properties itself (APPLIED_PROPERTIES None) but is not described
    monkeypatch.setitem(support.APPLIED_PROPERTIES, "AWS::SQS::Queue", None)
    monkeypatch.delitem(support._SELF_CHECKED, "AWS::SQS::Queue")
    # THEN rendering fails, naming it, instead of leaving a row that claims nothing
    with pytest.raises(KeyError, match="AWS::SQS::Queue"):
        support.render()


def test_the_markers_must_be_there() -> None:
    with pytest.raises(ValueError, match="support-table:begin"):
        support.replace_table("# no table here\n", "| x |\n")
