"""`lambdalab up` and `lambdalab deploy` as a user runs them: each warning said once, a summary, a second stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cloud import local_cloud

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "templates"
BIN = Path(sys.executable).parent


def test_up_says_each_warning_once_with_a_summary_and_deploy_adds_a_stack(tmp_path: Path) -> None:
    # GIVEN `lambdalab up` with a template that has resources the local cloud cannot create
    with local_cloud(TEMPLATES / "mentions" / "template.yaml", tmp_path, extra=["--stack-name", "mentions"]) as cloud:
        stderr = cloud.stderr_through("deployed stack mentions: ")  # the last line printed before `ready`
        # THEN every unsupported type is one line, printed once, and the summary counts what was created
        rules = [line for line in stderr if "AWS::IoT::TopicRule (NightlyRule, HourlyRule): not supported" in line]
        assert rules == [
            "warning: AWS::IoT::TopicRule (NightlyRule, HourlyRule): not supported by the local cloud; not created"
        ]
        warnings = [line for line in stderr if line.startswith("warning: ")]
        assert len(warnings) == len(set(warnings))
        assert not [line for line in stderr if "WARNING lambdalab.deploy" in line]  # not logged a second time
        summary = [line for line in stderr if line.startswith("deployed stack mentions: ")]
        assert len(summary) == 1
        assert summary[0].startswith(
            "deployed stack mentions: 3 resources created, 3 not supported by the local cloud, 1 skipped (attached "
            "to one not created); "
        ) and summary[0].endswith(" warnings")
        # AND the function that only mentions a rule runs
        function = cloud.outputs("mentions")["WorkerName"]
        answer = cloud.client("lambda").invoke(FunctionName=function, Payload=b"{}")
        assert json.loads(answer["Payload"].read()) == {"ok": True}
        # WHEN another template is deployed into the running cloud with `lambdalab deploy`
        port = cloud.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [str(BIN / "lambdalab"), "deploy", "--template", str(TEMPLATES / "includes" / "template.yaml"),
             "--stack-name", "second", "--port", port],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        # THEN it is a second stack of the same cloud, described by the CloudFormation API
        assert result.returncode == 0, result.stderr
        assert "deployed stack second: 7 resources created" in result.stderr
        stacks = {s["StackName"] for s in cloud.client("cloudformation").describe_stacks()["Stacks"]}
        assert {"mentions", "second"} <= stacks
        # AND deploying it again under the same name is CloudFormation's error, with a non-zero exit
        again = subprocess.run(
            [str(BIN / "lambdalab"), "deploy", "--template", str(TEMPLATES / "includes" / "template.yaml"),
             "--stack-name", "second", "--port", port],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert again.returncode == 2
        assert "error: AlreadyExistsException: Stack [second] already exists" in again.stderr
