"""Reading a template without deploying it: the lab's template resolves to the resources the simulator needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalab.deploy.readonly import read_stack
from lambdalab.errors import UserError

ROOT = Path(__file__).resolve().parents[3]


def test_the_lab_template_reads_with_samconfig_defaults_and_overrides():
    stack = read_stack(ROOT / "template.yaml", parameter_overrides={"ProvisionedConcurrency": "150"})
    assert stack.stack_name == "lambda-concurrency-lab"  # from samconfig.toml
    assert stack.parameters["ProvisionedConcurrency"] == "150"
    assert stack.parameters["ReservedConcurrency"] == "200"  # samconfig.toml's parameter_overrides
    alias = stack.resources["ProvisionedConcurrencyTestFunctionAliaslive"]
    assert alias.properties["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": "150"}
    assert alias.physical_id.endswith(":function:lambda-concurrency-lab-ProvisionedConcurrencyTestFunction:live")
    mapping = stack.of_type("AWS::Lambda::EventSourceMapping")[0]
    assert mapping.properties["EventSourceArn"] == stack.resources["WorkQueue"].attributes["Arn"]
    machine = stack.resources["BaseStateMachine"]
    assert "FanOut" in machine.properties["DefinitionString"]
    assert (
        machine.properties["DefinitionSubstitutions"]["FunctionAliasArn"]
        == stack.resources["ConcurrencyTestFunctionAliaslive"].physical_id
    )
    # Conditions apply: a PAY_PER_REQUEST table has no scalable targets
    on_demand = read_stack(ROOT / "template.yaml", parameter_overrides={"TableBillingMode": "PAY_PER_REQUEST"})
    assert "ProductsTableReadScalableTarget" not in on_demand.resources


def test_a_bad_override_names_the_parameter():
    with pytest.raises(UserError, match="NoSuchParameter"):
        read_stack(ROOT / "template.yaml", parameter_overrides={"NoSuchParameter": "1"})
    with pytest.raises(UserError, match="not found"):
        read_stack(ROOT / "nope.yaml")
