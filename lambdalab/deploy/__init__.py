"""The local deploy: a SAM/CloudFormation template → resources in the local cloud (see docs/LOCAL-DEPLOY.md)."""

from lambdalab.deploy.deployer import DeployedResource, DeployedStack, ResourceStatus, StackOutput, deploy
from lambdalab.deploy.template import parse_parameter_overrides

__all__ = [
    "DeployedResource",
    "DeployedStack",
    "ResourceStatus",
    "StackOutput",
    "deploy",
    "parse_parameter_overrides",
]
